"""Data-parallel scaling: training samples/s of the reference model on 1 and 2 processes.

Trains the shipped config ``reference`` (Olivetti, batch 50, the reference loop: 350 samples an epoch)
for a few epochs with ``aekit train``, once per setting, each in fresh processes: 1 process with
one thread, ``--nproc 2`` with one thread each (gloo over loopback), and, for comparison, 1 process
with two threads (what the same two cores give without torch.distributed). Samples/s come from
the median of the per-epoch times in history.csv, the first epoch (warm-up) left out. Scaling
efficiency = (samples/s on N processes) / (N x samples/s on 1 process, 1 thread). Prints a
Markdown table.

    python benchmarks/ddp_scaling.py [--epochs 6]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine_line, save

SAMPLES_PER_EPOCH = 350  # the reference loop on 400 images: 7 batches of 50


def measure(nproc: int, threads: int, epochs: int, out: Path) -> dict:
    """One run of ``aekit train``; samples/s from its history.csv."""
    cmd = [sys.executable, "-m", "aekit", "train", "--config", "reference",
           "--epochs", str(epochs), "--threads", str(threads), "--device", "cpu", "--no-progress", "--out", str(out)]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    with open(out / "history.csv") as f:
        seconds = [float(row["seconds"]) for row in csv.DictReader(f)][1:]
    epoch = statistics.median(seconds)
    return {"nproc": nproc, "threads": threads, "epoch_s": epoch, "samples_s": SAMPLES_PER_EPOCH / epoch,
            "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs per setting (the first is left out)")
    args = parser.parse_args()
    settings = [(1, 1), (2, 1), (1, 2)]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(n, t, args.epochs, Path(tmp) / f"p{n}t{t}") for n, t in settings]
    base = rows[0]["samples_s"]
    print(f"{machine_line('cpu')}; load average {os.getloadavg()[0]:.1f}; {args.epochs} epochs each, first left out\n")
    print("| processes x threads | s / epoch | samples/s | speed-up | scaling efficiency |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        speedup = r["samples_s"] / base
        eff = f"{speedup / r['nproc']:.0%}" if r["threads"] == 1 else "-"
        print(f"| {r['nproc']} x {r['threads']} | {r['epoch_s']:.2f} | {r['samples_s']:.0f} | {speedup:.2f} | {eff} |")
    save("ddp_scaling", settings=vars(args), rows=rows)


if __name__ == "__main__":
    main()
