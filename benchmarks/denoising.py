"""Denoising quality: aekit beside the classical denoisers, on held-out Olivetti faces.

For each working size and noise, trains a denoising model on the random split's 320 training faces
within a time budget, then scores it with ``aekit.evaluation.evaluate_run`` on the 80 test faces
beside every baseline (blur, TV, wavelet, NL-means, BM3D, PCA), all on exactly the noisy images the
model sees. With --subject, also trains and scores on the subject split (people 32-39 never seen).

    SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data python benchmarks/denoising.py            # ~45 min
    python benchmarks/denoising.py --sizes 32 --noises gaussian:0.2 --minutes 2 --no-baselines  # quick look

The epoch count is set from a measured warm-up so that training fits --minutes (with a hard stop
at --minutes as a safety net); the learning rate follows a cosine schedule over those epochs.
Training uses bf16 autocast by default (--amp; 1.8x the float32 speed on a CPU with AVX-512 BF16,
so more epochs fit the budget), random flips and random shifts of up to 1/32 of the size
(train.shift; without them the 64x64 model fits its training faces better than the test faces), and
the model is scored with its flip ensemble (the average of its passes on each image and its mirror
image; --no-flip-ensemble) beside the plain model.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import aekit
from aekit.config import Config, replace
from aekit.baselines import ALL
from aekit.evaluation import evaluate_run
from aekit.noise import parse_noise

ROOT = Path(__file__).resolve().parents[1]


def config_for(size: int, noise: str, split: str, args) -> Config:
    raw = Config().to_dict()
    raw["name"] = f"denoise-{size}-{noise.replace(':', '')}-{split}"
    raw["seed"] = args.seed
    # 64 -> 32 as the reference (TF1 legacy bicubic = every other pixel): the noise added at 64x64 keeps
    # its strength at 32x32 (an antialiased resize would average half of it away)
    raw["data"].update(split=split, test_fraction=0.2, resize="legacy-bicubic", size=[size, size])
    raw["model"] = {"name": "fcn", "input_size": [size, size], "channels": args.channels,
                    "code_length": args.code_length, "loss": args.loss, "residual": args.residual}
    shift = size // 32 if args.shift is None else args.shift  # the same fraction of the image at each size
    raw["train"].update(epochs=1, batch_size=args.batch_size, lr=args.lr, schedule="cosine", hflip=True,
                        shift=shift, eval_every=0, device=args.device, checkpoint_seconds=600, amp=args.amp)
    raw["noise"] = {k: v for k, v in vars(parse_noise(noise)).items()}
    return Config.from_dict(raw, where="benchmark")


def train_within(cfg: Config, minutes: float, out: Path, max_epochs: int | None) -> tuple[aekit.RunResult, float]:
    """Train for as many epochs as fit ``minutes`` (measured on a 3-epoch warm-up), never longer."""
    limit = minutes
    if max_epochs is None:
        warm = aekit.train(replace(cfg, **{"train.epochs": 3}), out=out, overwrite=True, progress=False,
                           log=lambda s: None)
        per_epoch = min(h.seconds for h in warm.history[1:])  # after the first epoch's start-up costs
        epochs = max(1, int(minutes * 60 / per_epoch))
        # the trainer stops after the epoch that reaches train.max_minutes: one epoch early, so that
        # the run ends within the budget even if the warm-up was fast (the cosine schedule is at its tail)
        limit = max(minutes - per_epoch / 60, per_epoch / 60)
    else:
        epochs = max_epochs
    cfg = replace(cfg, **{"train.epochs": epochs, "train.max_minutes": limit})
    t0 = time.perf_counter()
    result = aekit.train(cfg, out=out, overwrite=True, progress=False, log=lambda s: None)
    return result, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--noises", nargs="+", default=["gaussian:0.2", "gaussian:0.0-0.4"])
    ap.add_argument("--subject", action="store_true", help="also the subject split (unseen people)")
    ap.add_argument("--splits", nargs="+", choices=["random", "subject"], default=None,
                    help="the splits to run (default: random, plus subject with --subject)")
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget per model")
    ap.add_argument("--epochs", type=int, default=None, help="fixed epochs instead of the time budget")
    ap.add_argument("--channels", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--code-length", type=int, default=128)
    ap.add_argument("--residual", action=argparse.BooleanOptionalAction, default=False)
    ap.add_argument("--loss", choices=["mse", "psnr", "l2"], default="mse", help="the model's training loss")
    ap.add_argument("--shift", type=int, default=None,
                    help="train.shift, random translation in pixels (default: size / 32, so 1 at 32x32, 2 at 64x64)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", choices=["off", "bf16", "fp16"], default="bf16",
                    help="autocast for training (default bf16: 1.8x faster on a CPU with AVX-512 BF16)")
    ap.add_argument("--flip-ensemble", action=argparse.BooleanOptionalAction, default=True,
                    help="score the model's flip ensemble (the plain model is scored and reported too)")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "runs" / "benchmark-denoising"))
    args = ap.parse_args()

    rows = []
    splits = args.splits or ["random"] + (["subject"] if args.subject else [])
    for split in splits:
        for size in args.sizes:
            for noise in args.noises:
                cfg = config_for(size, noise, split, args)
                out = Path(args.out) / cfg.name
                result, seconds = train_within(cfg, args.minutes, out, args.epochs)
                baselines = () if args.no_baselines else ALL
                report = evaluate_run(out, baselines=baselines, seed=0)
                by = {r["method"]: r for r in report["results"]}
                plain = by["aekit (fcn)"]
                model = plain
                if args.flip_ensemble:  # the same noisy images (seed 0), scored with the model's flip ensemble
                    both = evaluate_run(out, seed=0, write=False, flip_ensemble=True)["results"][1]
                    by[both["method"]] = both
                    model = both
                best = by.get(report["best_baseline"]) if report["best_baseline"] else None
                rows.append({
                    "split": split, "size": size, "noise": noise, "shift": cfg.train.shift,
                    "epochs": result.history[-1].epoch,
                    "train_minutes": sum(h.seconds for h in result.history) / 60,  # the epochs themselves
                    "call_minutes": seconds / 60,  # with loading the data, the final evaluation and saving
                    "noisy_psnr": by["noisy input"]["psnr"],
                    "aekit_psnr": model["psnr"], "aekit_ssim": model["ssim"],
                    "plain_psnr": plain["psnr"], "plain_ssim": plain["ssim"],
                    "best_baseline": report["best_baseline"],
                    "best_psnr": best["psnr"] if best else None, "best_ssim": best["ssim"] if best else None,
                    "all": {m: (r["psnr"], r["ssim"]) for m, r in by.items()},
                })
                r = rows[-1]
                print(json.dumps(r), flush=True)

    print()
    print("| split | size | noise | epochs (min) | noisy | aekit PSNR / SSIM | plain model | best baseline | its PSNR / SSIM | margin |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        best = (f"{r['best_psnr']:.2f} / {r['best_ssim']:.3f}" if r["best_psnr"] is not None else "-")
        margin = f"{r['aekit_psnr'] - r['best_psnr']:+.2f} dB" if r["best_psnr"] is not None else "-"
        print(f"| {r['split']} | {r['size']} | {r['noise']} | {r['epochs']} ({r['train_minutes']:.1f}) | "
              f"{r['noisy_psnr']:.2f} | {r['aekit_psnr']:.2f} / {r['aekit_ssim']:.3f} | "
              f"{r['plain_psnr']:.2f} / {r['plain_ssim']:.3f} | {r['best_baseline'] or '-'} | "
              f"{best} | {margin} |")
    if not args.no_baselines:
        print()
        methods = list(rows[0]["all"])
        print("| split | size | noise | " + " | ".join(methods) + " |")
        print("| --- | --- | --- | " + " | ".join("---" for _ in methods) + " |")
        for r in rows:
            print(f"| {r['split']} | {r['size']} | {r['noise']} | "
                  + " | ".join(f"{r['all'][m][0]:.2f}" for m in methods) + " |")


if __name__ == "__main__":
    main()
