"""The full reference experiment (docs/reference-experiments.md, experiment A): 600 epochs on all 400 Olivetti faces.

Not part of CI (about 30-45 minutes on a 2-core CPU). Prints the epoch 1, 2, 3 and 600 losses
and code means beside the reference's published numbers, and the wall time.

    SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data python benchmarks/reference.py [--seed N] [--epochs N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


import aekit
from aekit.config import replace
from common import machine_line, save

ROOT = Path(__file__).resolve().parents[1]
# Published numbers (docs/reference-experiments.md, section 2): epoch -> (loss per sample, code mean or None)
REFERENCE = {1: (11.9334, 0.5421), 2: (10.2941, None), 3: (9.9176, None), 600: (0.4636, 0.4237)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=None, help="default: the config's (1002)")
    ap.add_argument("--epochs", type=int, default=600)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="run folder (default runs/benchmark-reference-seedN)")
    args = ap.parse_args()

    cfg = aekit.load_config("reference")
    cfg = replace(cfg, seed=args.seed, **{"train.epochs": args.epochs, "train.device": args.device})
    args.seed = cfg.seed
    out = args.out or ROOT / "runs" / f"benchmark-reference-seed{cfg.seed}"
    t0 = time.perf_counter()
    result = aekit.train(cfg, out=out, overwrite=True, progress=False)
    wall = time.perf_counter() - t0

    by_epoch = {s.epoch: s for s in result.history}
    print()
    print(f"{machine_line(args.device)}, seed {args.seed}")
    print(f"{'epoch':>5} | {'reference loss':>14} | {'aekit loss':>10} | {'reference code mean':>19} | {'aekit code mean':>15}")
    for epoch in sorted(set(REFERENCE) | {args.epochs}):
        if epoch not in by_epoch:
            continue
        ref_loss, ref_code = REFERENCE.get(epoch, (None, None))
        s = by_epoch[epoch]
        fmt = lambda v: "-" if v is None else f"{v:.4f}"
        print(f"{epoch:>5} | {fmt(ref_loss):>14} | {s.loss_per_sample:>10.4f} | {fmt(ref_code):>19} | {s.code_mean:>15.4f}")
    tr = result.metrics["train"]
    print(f"after training, all 400 faces in eval mode: loss per sample {tr['loss_per_sample']:.4f}, "
          f"PSNR {tr['psnr']:.2f} dB, SSIM {tr['ssim']:.4f}")
    print(f"wall time {wall / 60:.1f} min ({wall / args.epochs:.2f} s/epoch); run folder {result.out}")
    save(f"reference-seed{args.seed}", settings=vars(args), device=args.device, rows={
        "wall_seconds": wall, "history": [vars(s) for s in result.history], "final": result.metrics["train"]})


if __name__ == "__main__":
    main()
