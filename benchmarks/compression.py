"""Compression: aekit against PCA at the same code length, on held-out faces.

The Olivetti faces at 32 x 32 (antialiased bicubic, aekit's default resize), both held-out splits of
the denoising issue (random: the last 20% of the seeded order; subject: people 32-39, never seen),
code lengths 32, 64, 128 and 256. For every (split, code length) the benchmark fits PCA with that many
components on the training faces and trains an aekit model; both are scored on exactly the same
held-out images (PSNR: mean of per-image PSNR, dB; SSIM as scikit-image). Prints one Markdown table
and writes it, with every setting and the validation curves, as JSON.

The aekit model is ``hybrid``: a linear encoder and decoder started at the training faces' PCA (with
their mirror images), an MLP correction of the decoder and a small convolutional refiner. Two of its
settings are chosen on a validation split carved from the training split the way the test split is
carved from the data (random: the last 10% of the training order; subject: the last 20% of the
training people), never on the test faces: the MLP (hidden 512, or none) and the number of epochs
(0, 5, 10, ... --max-epochs; 0 keeps the PCA start). The chosen setting is then trained on the whole
training split for that many epochs. Training: mse, Adam lr 1e-3 (constant), batch 32, left-right
flips. The minutes reported per cell include the validation runs.

    python benchmarks/compression.py                      # the full table: 8 cells, ~15 minutes on a CPU
    python benchmarks/compression.py --codes 64 --splits random
    python benchmarks/compression.py --smoke              # 5 epochs, code 64, random split: checks it runs
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

import aekit
import aekit.files
from aekit.data import resize, split_indices
from aekit.metrics import image_metrics
from aekit.pipeline import Pipeline
from aekit.training import data_init

CODES = (32, 64, 128, 256)
SPLITS = ("random", "subject")
CANDIDATES = {"mlp": {"hidden": 512}, "no mlp": {"hidden": 0}}  # the settings tried on the validation split


def pca_scores(train: torch.Tensor, test: torch.Tensor, k: int) -> dict:
    from sklearn.decomposition import PCA

    t0 = time.perf_counter()
    pca = PCA(n_components=k, random_state=0).fit(train.flatten(1).numpy())
    recon = pca.inverse_transform(pca.transform(test.flatten(1).numpy())).clip(0, 1)
    scores = image_metrics(torch.from_numpy(recon.astype(np.float32)).view_as(test), test)
    return {**scores, "seconds": round(time.perf_counter() - t0, 2)}


def _model(k: int, setting: str, args):
    torch.manual_seed(args.seed)
    return aekit.create_model("hybrid", code_length=k, loss="mse", refine_channels=args.refine_channels,
                              **CANDIDATES[setting])


def trained(k: int, setting: str, epochs: int, train: torch.Tensor, args, val: torch.Tensor | None = None):
    """The model after ``epochs`` epochs (0: its PCA start) and, with ``val``, its validation PSNR
    after 0, 5, 10, ... epochs."""
    model = _model(k, setting, args)
    curve = {}
    if val is not None or epochs == 0:
        data_init(model, train, seed=args.seed, pipeline=Pipeline(hflip=True))  # the start fit() makes, to score it
        if val is not None:
            curve[0] = aekit.evaluate(model.eval(), val)["psnr"]
    if epochs:  # fit() starts from the same data_init (same images and seed), so the scored start is its start
        cfg = aekit.TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr, hflip=True,
                                eval_every=5 if val is not None else 0, device=args.device, checkpoint_seconds=0)
        history = aekit.fit(model, train, cfg, seed=args.seed, test_images=val, progress=False, log=lambda s: None)
        curve.update({h.epoch: h.heldout["psnr"] for h in history if h.heldout})
    return model.eval(), curve


def aekit_scores(data: aekit.ImageData, tr, te, faces: torch.Tensor, split: str, k: int, args) -> dict:
    t0 = time.perf_counter()
    fit_i, val_i = split_indices(data.subset(tr), split=split, test_fraction=0.1)
    train = faces[tr]
    tried = {s: trained(k, s, args.max_epochs, train[fit_i], args, val=train[val_i])[1] for s in CANDIDATES}
    setting, epochs = max(((s, e) for s, c in tried.items() for e in c), key=lambda se: tried[se[0]][se[1]])
    model, _ = trained(k, setting, epochs, train, args)
    scores = aekit.evaluate(model, faces[te])
    return {"mse": scores["mse"], "psnr": scores["psnr"], "ssim": scores["ssim"], "setting": setting,
            "epochs": epochs, "validation_images": len(val_i), "seconds": round(time.perf_counter() - t0, 1),
            "validation_psnr": {s: {e: round(v, 3) for e, v in c.items()} for s, c in tried.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codes", type=int, nargs="+", default=list(CODES), help="code lengths (default 32 64 128 256)")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), help="held-out splits")
    p.add_argument("--max-epochs", type=int, default=60, help="the longest training tried on the validation split")
    p.add_argument("--refine-channels", type=int, default=32, help="width of the convolutional refiner (0: none)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/compression.json"), help="results (JSON)")
    p.add_argument("--smoke", action="store_true", help="5 epochs, code 64, random split (checks that it runs)")
    args = p.parse_args()
    if args.smoke:
        args.codes, args.splits, args.max_epochs = [64], ["random"], 5
    if args.threads:
        torch.set_num_threads(args.threads)

    data = aekit.load_data("olivetti")
    faces = resize(data.images, (32, 32), "bicubic")  # exactly what the models and PCA see
    rows = []
    for split in args.splits:
        tr, te = split_indices(data, split=split, test_fraction=0.2)
        for k in args.codes:
            pca = pca_scores(faces[tr], faces[te], k)
            ae = aekit_scores(data, tr, te, faces, split, k, args)
            rows.append({"split": split, "code_length": k, "train_images": len(tr), "test_images": len(te),
                         "pca": pca, "aekit": ae})
            print(f"{split:8s} {k:4d}: PCA {pca['psnr']:.2f} dB / {pca['ssim']:.3f}   "
                  f"aekit {ae['psnr']:.2f} dB / {ae['ssim']:.3f} ({ae['setting']}, {ae['epochs']} epochs; "
                  f"{ae['seconds']} s with the validation runs)", flush=True)

    print("\n| split | code | PCA PSNR (dB) | aekit PSNR (dB) | PCA SSIM | aekit SSIM | chosen on validation | minutes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for r in rows:
        a, b = r["pca"], r["aekit"]
        print(f"| {r['split']} | {r['code_length']} | {a['psnr']:.2f} | {b['psnr']:.2f} | {a['ssim']:.3f} | "
              f"{b['ssim']:.3f} | {b['setting']}, {b['epochs']} epochs | {b['seconds'] / 60:.1f} |")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    machine = {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    aekit.files.write_json(args.out, {"settings": settings, "machine": machine, "rows": rows})
    print(f"\nWrote {args.out}")


if __name__ == "__main__":
    main()
