"""How reading a folder scales: peak memory and images/s for 1k, 10k and 50k generated images.

Generates small RGB PNGs (default 32x32, in 10 subfolders) in a temporary folder that grows from
one size to the next and is deleted at the end. For each size, a fresh process loads the folder
(``aekit.load_data``: header scan + one decoding pass that checks every file) and reads one
shuffled epoch in batches of 50, as ``fit`` does; once streaming from disk (``stream="on"``,
DataLoader worker processes) and once decoded into memory (``stream="off"``) for comparison.
Prints a Markdown table: load and epoch times, epoch images/s, the process's memory after
``import aekit`` and at its peak, the largest worker's peak, and what the decoded images take.

    python benchmarks/data_scaling.py [--sizes 1000 10000 50000] [--workers 2] [--image 32]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

SUBFOLDERS = 10


def write_images(args: tuple[str, int, int, int]) -> None:
    """Images start..stop-1 of a folder, as root/label-K/img-NNNNNN.png (smooth, all different)."""
    import numpy as np
    from PIL import Image

    root, start, stop, side = args
    yy, xx = np.mgrid[0:side, 0:side] / side
    for i in range(start, stop):
        phase = i * 0.618
        rgb = np.stack([np.sin(6.28 * (xx + phase)), np.cos(6.28 * (yy * (1 + i % 3) + phase)),
                        np.sin(6.28 * (xx + yy + phase / 2))], -1)
        folder = Path(root) / f"label-{i % SUBFOLDERS}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(((rgb + 1) * 127.5).astype(np.uint8)).save(folder / f"img-{i:06d}.png")


def rss_mib() -> float:
    """Current resident memory of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(folder: str, stream: str, workers: int, side: int) -> dict:
    """Run in a fresh process: load the folder, read one shuffled epoch; times and peak memory."""
    import torch

    import aekit
    from aekit.data import epoch_batches

    torch.set_num_threads(1)
    base = rss_mib()
    t0 = time.perf_counter()
    data = aekit.load_data(folder, size=(side, side), stream=stream, workers=workers)
    t1 = time.perf_counter()
    n = len(data)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    seen, checksum = 0, 0.0
    for batch in epoch_batches(data.images, [order[s : s + 50] for s in range(0, n, 50)]):
        seen += len(batch)
        checksum += float(batch.sum())
    t2 = time.perf_counter()
    assert seen == n
    kib = 1024
    return {
        "images": n,
        "load_s": t1 - t0,
        "epoch_s": t2 - t1,
        "base_mib": base,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
        "worker_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib,
        "decoded_mib": n * 3 * side * side * 4 / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    ap.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    ap.add_argument("--image", type=int, default=32, help="side of the generated square images")
    ap.add_argument("--measure", nargs=2, metavar=("FOLDER", "STREAM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], args.workers, args.image)))
        return

    from common import machine_line, save  # here, not at the top: --measure times `import aekit` itself

    print(f"# {machine_line('cpu')}; {args.workers} workers, {args.image}x{args.image} RGB PNGs, batch 50")
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="aekit-scaling-"))
    try:
        made = 0
        for n in sorted(args.sizes):
            t0 = time.perf_counter()
            chunks = [(str(tmp), s, min(s + 1000, n), args.image) for s in range(made, n, 1000)]
            with Pool(2) as pool:
                pool.map(write_images, chunks)
            made = n
            print(f"generated {n} images in total ({time.perf_counter() - t0:.1f} s for this step)", flush=True)
            for stream in ("on", "off"):
                r = subprocess.run(
                    [sys.executable, __file__, "--measure", str(tmp), stream, "--workers", str(args.workers),
                     "--image", str(args.image)],
                    capture_output=True, text=True, check=True,
                )
                row = {"stream": stream, **json.loads(r.stdout)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print("| images | stream | load (scan + check), s | epoch, s | epoch images/s | RSS after import, MiB "
          "| peak RSS, MiB | largest worker, MiB | decoded size, MiB |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['images']:,} | {r['stream']} | {r['load_s']:.1f} | {r['epoch_s']:.1f} | "
              f"{r['images'] / r['epoch_s']:,.0f} | {r['base_mib']:.0f} | {r['peak_mib']:.0f} | "
              f"{r['worker_peak_mib']:.0f} | {r['decoded_mib']:.0f} |")
    save("data_scaling", settings={k: v for k, v in vars(args).items() if k != "measure"}, rows=rows)


if __name__ == "__main__":
    main()
