"""Training throughput of the reference model: a naive PyTorch loop, aekit's trainer, and Keras.

One session, interleaved rounds (naive, aekit, keras, naive, aekit, keras, ...), each round a few
epochs of the reference schedule (7 batches of 50 Olivetti faces at 32x32). Prints samples/s
(median, min, max), the ratio to the naive loop, and achieved GFLOP/s against the fp32 matrix
product peak measured here with the same number of threads.

    SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data python benchmarks/throughput.py
        [--rounds 5] [--epochs 2] [--threads 2] [--no-keras] [--profile] [--device cuda] [--amp bf16] [--compile]

The Keras system runs, in a worker process of its own (TensorFlow in the same process changes
PyTorch's speed), when the optional extra is installed (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

import aekit
from aekit.config import replace
from aekit.models import create_model
from aekit.pipeline import prepare_data
from aekit.training import fit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import naive_reference  # noqa: E402
from common import machine_line, save  # noqa: E402


def matmul_peak(device: str, n: int = 2048, repeats: int = 10) -> float:
    """Best fp32 GFLOP/s of an n x n matrix product."""
    a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 2):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train_flops_per_sample(x: torch.Tensor) -> float:
    """Forward + backward FLOPs of one training sample (PyTorch's flop counter, naive model)."""
    from torch.utils.flop_counter import FlopCounterMode

    model, _ = naive_reference.make()
    counter = FlopCounterMode(display=False)
    with counter:
        recon, _ = model(x[:10])
        (0.5 * ((recon - x[:10]) ** 2).sum()).backward()
    return counter.get_total_flops() / 10


class Naive:
    name = "naive PyTorch loop"

    def __init__(self, x, device):
        self.x = x.to(device)
        self.model, self.opt = naive_reference.make()
        self.model.to(device)
        self.opt = type(self.opt)(self.model.parameters(), lr=1e-3)
        self.g = torch.Generator().manual_seed(0)

    def run(self, epochs):
        return naive_reference.train_epochs(self.model, self.opt, self.x, epochs, generator=self.g)


class Aekit:
    name = "aekit trainer"

    def __init__(self, x, cfg):
        self.x, self.cfg = x, cfg
        self.model = create_model(cfg.model)

    def run(self, epochs):
        train = replace(self.cfg, **{"train.epochs": epochs}).train
        return [s.loss_per_sample for s in fit(self.model, self.x, train, seed=self.cfg.seed,
                                               progress=False, log=lambda s: None)]


class KerasModel:
    name = "Keras (TensorFlow)"

    def __init__(self, x, threads):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras
        from keras import layers

        self.name = f"Keras {keras.__version__} (TensorFlow {tf.__version__})"
        conv = dict(kernel_size=3, padding="same", activation="relu", kernel_initializer="glorot_uniform")
        self.model = keras.Sequential([
            keras.Input((32, 32, 1)),
            layers.Conv2D(16, strides=2, **conv), layers.Conv2D(32, **conv),
            layers.Conv2D(64, **conv), layers.Conv2D(128, **conv),
            layers.Flatten(), layers.Dense(256, activation="sigmoid"), layers.Reshape((16, 16, 1)),
            layers.Conv2DTranspose(128, strides=2, **conv), layers.Conv2DTranspose(64, **conv),
            layers.Conv2DTranspose(32, **conv),
            layers.Conv2DTranspose(1, kernel_size=3, padding="same", activation="sigmoid"),
        ])
        self.model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-8),
                           loss=lambda y, p: 0.5 * tf.reduce_sum(tf.square(y - p), axis=[1, 2, 3]))
        self.x = x.permute(0, 2, 3, 1).numpy()[:350]  # the 7 batches of 50 the reference loop takes

    def run(self, epochs):
        h = self.model.fit(self.x, self.x, batch_size=50, epochs=epochs, shuffle=True, verbose=0)
        return h.history["loss"]


class Keras:
    """The Keras system in a separate worker process: TensorFlow loaded into this process changes the
    PyTorch systems' speed (its own allocator and thread pools), which a PyTorch user would not have."""

    def __init__(self, threads: int):
        import subprocess

        self.proc = subprocess.Popen([sys.executable, __file__, "--keras-worker", "--threads", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        reply = self.proc.stdout.readline().strip()  # the worker's name, or why it cannot run
        if not reply.startswith("ready "):
            self.proc.wait()
            raise ImportError(reply or "the Keras worker did not start")
        self.name = reply[len("ready "):]

    def run(self, epochs):
        self.proc.stdin.write(f"{epochs}\n")
        self.proc.stdin.flush()
        return [float(v) for v in self.proc.stdout.readline().split()]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def keras_worker(threads: int) -> None:
    """Serve 'run N epochs' requests on stdin for the Keras system (one line in, one line out)."""
    import io
    import contextlib

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            cfg = aekit.load_config("reference")
            x = prepare_data(cfg).train_x
            system = KerasModel(x, threads)
    except ImportError as e:
        print(f"Keras/TensorFlow not installed ({e}): pip install -e '.[bench]'", flush=True)
        return
    print(f"ready {system.name}", flush=True)
    for line in sys.stdin:
        with contextlib.redirect_stdout(io.StringIO()):
            losses = system.run(int(line))
        print(" ".join(f"{v:.6f}" for v in losses), flush=True)


def profile(system, label: str) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as p:
        system.run(1)
    print(f"\n--- profile of one epoch: {label} (self time, top 12 ops) ---")
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per round and system")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", default="auto", help="aekit only: auto (bf16 on a CPU with native bf16, else float32), off, bf16 or fp16")
    ap.add_argument("--compile", action="store_true", help="aekit only: torch.compile")
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="where to write the rows (default: benchmarks/throughput.json)")
    ap.add_argument("--profile", action="store_true", help="print a torch.profiler table per system")
    ap.add_argument("--keras-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.keras_worker:
        return keras_worker(args.threads)

    cfg = aekit.load_config("reference")
    overrides = {"train.device": args.device, "train.threads": args.threads}
    overrides["train.amp"] = args.amp
    if args.compile:
        overrides["train.compile"] = True
    cfg = replace(cfg, **overrides)
    x = prepare_data(cfg).train_x  # (400, 1, 32, 32), the reference's faces
    systems = [Naive(x, args.device), Aekit(x, cfg)]
    if not args.no_keras and args.device == "cpu":
        try:
            systems.append(Keras(args.threads))
        except ImportError as e:
            print(f"{e}: skipping that system")
    samples_per_epoch = len(range(0, len(x) - 50, 50)) * 50
    for s in systems:  # warm-up (allocators, oneDNN primitives, Keras graph tracing)
        s.run(1)
    rates = {s.name: [] for s in systems}
    for _ in range(args.rounds):
        for s in systems:
            sync(args.device)
            t = time.perf_counter()
            s.run(args.epochs)
            sync(args.device)
            rates[s.name].append(args.epochs * samples_per_epoch / (time.perf_counter() - t))
    for s in systems:
        getattr(s, "close", lambda: None)()
    peak = matmul_peak(args.device)
    flops = train_flops_per_sample(x)

    print(f"\n{machine_line(args.device)}; aekit amp {args.amp}" + (", aekit compiled" if args.compile else ""))
    print(f"{args.rounds} interleaved rounds of {args.epochs} epochs ({samples_per_epoch} samples each) per system; "
          f"{flops / 1e9:.3f} GFLOP per training sample; fp32 matrix-product peak {peak:.0f} GFLOP/s")
    base = statistics.median(rates[systems[0].name])
    print(f"{'system':40} | {'samples/s median (min-max)':>27} | {'vs naive':>8} | {'GFLOP/s':>7} | {'of peak':>7}")
    for s in systems:
        r = rates[s.name]
        med = statistics.median(r)
        print(f"{s.name:40} | {med:9.1f} ({min(r):6.1f}-{max(r):6.1f}) | {med / base:7.2f}x | "
              f"{med * flops / 1e9:7.1f} | {med * flops / 1e9 / peak:6.0%}")
    save("throughput", settings={k: v for k, v in vars(args).items() if k != "keras_worker"}, device=args.device,
         path=args.json, rows=[{"system": s.name, "samples_per_s": rates[s.name], "gflop_per_sample": flops / 1e9,
                "peak_gflops": peak} for s in systems])
    if args.profile:
        for s in systems[:2]:
            profile(s, s.name)


if __name__ == "__main__":
    main()
