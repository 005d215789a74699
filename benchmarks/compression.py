"""Compression: aekit autoencoders against PCA at the same code length, on held-out faces.

The Olivetti faces at 32 x 32 (antialiased bicubic, aekit's default resize), both held-out splits of
the denoising issue (random: the last 20% of the seeded order; subject: people 32-39, never seen),
code lengths 32, 64, 128 and 256. For every (split, code length) the benchmark fits PCA with that many
components on the training faces and trains an aekit model for at most ``--minutes`` (and
``--epochs``); both are scored on exactly the same held-out images (PSNR: mean of per-image PSNR, dB;
SSIM as scikit-image). Prints one Markdown table and writes it, with every setting, as JSON.

The aekit model is the reference architecture (conv) with a code of the given length: the decoder
reshapes the code to C x h x w, so its strides follow the code length (256: the reference's (2, 1, 1),
a 16 x 16 start; 128 and 64: (2, 2, 1), 8 x 8; 32: (2, 2, 2), 4 x 4). Training: mse loss, Adam with a
cosine schedule, left-right flips (``--no-hflip`` turns them off).

    python benchmarks/compression.py                      # the full table: 8 models x 15 minutes on a CPU
    python benchmarks/compression.py --minutes 2 --codes 64 --splits random
    python benchmarks/compression.py --smoke              # 1 epoch, code 64, random split: checks it runs
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import aekit
from aekit.data import resize, split_indices
from aekit.metrics import image_metrics

CODES = (32, 64, 128, 256)
SPLITS = ("random", "subject")


def decoder_strides(code_length: int) -> tuple[int, int, int]:
    """Strides that let the 32x32 decoder reshape a code of this length (C x h x w, h = 32 / stride)."""
    for strides in ((2, 1, 1), (2, 2, 1), (2, 2, 2)):
        cells = (32 // int(np.prod(strides))) ** 2
        if code_length % cells == 0:
            return strides
    raise ValueError(f"no decoder strides fit a code of {code_length} at 32x32")


def pca_scores(train: torch.Tensor, test: torch.Tensor, k: int) -> dict:
    from sklearn.decomposition import PCA

    t0 = time.perf_counter()
    pca = PCA(n_components=k, random_state=0).fit(train.flatten(1).numpy())
    recon = pca.inverse_transform(pca.transform(test.flatten(1).numpy())).clip(0, 1)
    scores = image_metrics(torch.from_numpy(recon.astype(np.float32)).view_as(test), test)
    return {**scores, "seconds": round(time.perf_counter() - t0, 2)}


def aekit_scores(train: torch.Tensor, test: torch.Tensor, k: int, args) -> dict:
    def make(epochs: int):
        torch.manual_seed(args.seed)
        model = aekit.create_model("conv", code_length=k, decoder_strides=decoder_strides(k), loss="mse")
        cfg = aekit.TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr, schedule="cosine",
                                hflip=not args.no_hflip, max_minutes=args.minutes, eval_every=0,
                                device=args.device, checkpoint_seconds=0, data_init=True)
        return model, cfg

    epochs = args.epochs
    if args.minutes:  # the cosine schedule must end within the budget: size it from a timed warm-up
        model, cfg = make(2)
        warm = aekit.fit(model, train, cfg, seed=args.seed, progress=False, log=lambda s: None)
        epochs = max(1, min(epochs, int(args.minutes * 60 * 0.95 / warm[-1].seconds)))
    model, cfg = make(epochs)
    t0 = time.perf_counter()
    history = aekit.fit(model, train, cfg, seed=args.seed, progress=False, log=lambda s: None)
    seconds = time.perf_counter() - t0
    scores = aekit.evaluate(model.eval(), test)
    return {"mse": scores["mse"], "psnr": scores["psnr"], "ssim": scores["ssim"], "epochs": history[-1].epoch,
            "seconds": round(seconds, 1), "stopped": history.stopped}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codes", type=int, nargs="+", default=list(CODES), help="code lengths (default 32 64 128 256)")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), help="held-out splits")
    p.add_argument("--minutes", type=float, default=15.0, help="training time budget per model (default 15)")
    p.add_argument("--epochs", type=int, default=2000, help="at most this many epochs")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--no-hflip", action="store_true", help="no left-right flip augmentation")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/compression.json"), help="results (JSON)")
    p.add_argument("--smoke", action="store_true", help="1 epoch, code 64, random split (checks that it runs)")
    args = p.parse_args()
    if args.smoke:
        args.codes, args.splits, args.epochs, args.minutes = [64], ["random"], 1, 0.0
    if args.threads:
        torch.set_num_threads(args.threads)

    data = aekit.load_data("olivetti")
    faces = resize(data.images, (32, 32), "bicubic")  # exactly what the models and PCA see
    rows = []
    for split in args.splits:
        tr, te = split_indices(data, split=split, test_fraction=0.2)
        train, test = faces[tr], faces[te]
        for k in args.codes:
            pca = pca_scores(train, test, k)
            ae = aekit_scores(train, test, k, args)
            rows.append({"split": split, "code_length": k, "train_images": len(train), "test_images": len(test),
                         "pca": pca, "aekit": ae})
            print(f"{split:8s} {k:4d}: PCA {pca['psnr']:.2f} dB / {pca['ssim']:.3f}   "
                  f"aekit {ae['psnr']:.2f} dB / {ae['ssim']:.3f} ({ae['epochs']} epochs, {ae['seconds']} s)",
                  flush=True)

    print("\n| split | code | PCA PSNR (dB) | aekit PSNR (dB) | PCA SSIM | aekit SSIM | aekit epochs, minutes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        a, b = r["pca"], r["aekit"]
        print(f"| {r['split']} | {r['code_length']} | {a['psnr']:.2f} | {b['psnr']:.2f} | {a['ssim']:.3f} | "
              f"{b['ssim']:.3f} | {b['epochs']}, {b['seconds'] / 60:.1f} |")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    machine = {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    aekit.io.write_json(args.out, {"settings": settings, "machine": machine, "rows": rows})
    print(f"\nWrote {args.out}")


if __name__ == "__main__":
    main()
