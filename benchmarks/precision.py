"""Precision on this machine: seconds per epoch of the reference model with --amp off, auto and bf16.

`amp = "auto"` takes bf16 only where the device runs it natively (AVX512-BF16 or AMX on a CPU); on a
CPU without it PyTorch emulates bf16 and is many times slower than float32. This prints what auto
chose and the epoch time of each setting, measured one after the other in one session:

    SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data python benchmarks/precision.py [--epochs 3] [--name precision]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import aekit
from aekit.config import replace
from aekit.training.devices import resolve_amp, resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per setting (bf16 emulated: at most 2)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--name", default="precision", help="results file: benchmarks/NAME.json")
    args = ap.parse_args()
    base = aekit.load_config("reference")
    chosen, why = resolve_amp("auto", resolve_device(args.device))
    rows = []
    for amp in ("off", "auto", "bf16"):
        epochs = args.epochs if amp != "bf16" or chosen == "bf16" else min(args.epochs, 2)
        cfg = replace(base, **{"train.amp": amp, "train.epochs": epochs, "train.device": args.device})
        t0 = time.perf_counter()
        result = aekit.train(cfg, out=ROOT / "runs" / "benchmarks" / f"precision-{amp}", overwrite=True,
                             progress=False, log=lambda s: None)
        seconds = [h.seconds for h in result.history]
        rows.append({"amp": amp, "ran_as": result.metrics.get("precision"), "epochs": epochs,
                     "seconds_per_epoch": statistics.median(seconds), "wall": time.perf_counter() - t0,
                     "final_loss": result.history[-1].loss_per_sample})
        print(rows[-1], flush=True)
    print(f"\n{machine_line(args.device)}; amp auto chose {chosen}: {why}\n")
    print("| --amp | ran as | seconds per epoch (median) | vs off |")
    print("| --- | --- | ---: | ---: |")
    for r in rows:
        print(f"| {r['amp']} | {r['ran_as']} | {r['seconds_per_epoch']:.2f} | "
              f"{r['seconds_per_epoch'] / rows[0]['seconds_per_epoch']:.2f}x |")
    save(args.name, settings=vars(args), rows=rows, device=args.device)


if __name__ == "__main__":
    main()
