"""What every benchmark does at the end: say the machine it ran on, and keep its raw results as JSON;
and the options and timer of the step benchmarks.

    from common import machine_line, median_ms, save, step_options
    print(machine_line("cpu"))                       # AMD EPYC (AVX2, no native bf16), 2 cores, ...
    save("throughput", settings=vars(args), rows=rows, device="cpu")   # -> benchmarks/throughput.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import aekit
from aekit.files import write_json
from aekit.training.devices import describe_machine, machine

HERE = Path(__file__).resolve().parent


def step_options(doc: str, rounds: int, steps: int) -> argparse.Namespace:
    """The command line of a step benchmark (--rounds, --steps, --threads), parsed; --threads applied."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def median_ms(fn, steps: int, skip: int = 3) -> float:
    """The median wall time of ``fn()`` in milliseconds over ``steps`` calls, after ``skip`` warm-up calls."""
    times = []
    for _ in range(steps + skip):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times[skip:]) * 1000


def machine_line(device: str = "cpu") -> str:
    return f"aekit {aekit.__version__}; {describe_machine(machine(device))}"


def save(name: str, *, settings: dict, rows, device: str = "cpu", path: Path | None = None) -> Path:
    """``benchmarks/NAME.json``: the settings, the machine (CPU model and flags, cores, threads, torch,
    device) and the rows, as measured."""
    path = path or HERE / f"{name}.json"
    write_json(path, {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M"), "aekit": aekit.__version__,
                      "machine": machine(device), "settings": {k: str(v) if isinstance(v, Path) else v
                                                               for k, v in settings.items()}, "rows": rows})
    print(f"Wrote {path}")
    return path
