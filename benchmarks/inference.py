"""Inference speed at 64x64: ``aekit denoise`` and ``aekit encode`` in batch, beside BM3D.

Writes --n grayscale 64x64 PNGs (the Olivetti faces, native 64x64, with noise), then times, for
each model: the library call on images already in memory (``aekit.inference.reconstruct`` /
``aekit.latent.encode``) and the command end to end on the folder (process start, reading and
writing every file included). BM3D (the ``bm3d`` package, the best classical denoiser of the
denoising benchmark) is timed on a few of the same images.

The models are built by a 1-epoch run of each configuration: speed does not depend on the weights.

    SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data python benchmarks/inference.py [--n 2000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import aekit
from aekit.config import Config, replace
from aekit.data import load_olivetti
from aekit.data import write_image
from aekit.inference import reconstruct
from aekit.models import load
from aekit.latent import encode
from common import machine_line, save


def configs() -> dict[str, Config]:
    ref = aekit.load_config("reference")
    den = aekit.load_config("reference-denoising")
    raw = Config().to_dict()
    raw["data"].update(size=[64, 64], test_fraction=0.2)
    raw["model"] = {"name": "fcn", "input_size": [64, 64], "channels": [32, 64, 128], "code_length": 128,
                    "loss": "mse"}
    fcn = Config.from_dict(raw, where="benchmark")
    small = replace(fcn, **{"model.channels": (16, 32), "model.code_length": 32})
    return {
        "reference conv (32x32 working size)": ref,
        "reference denoising conv (32x32)": den,
        "fcn 32/64/128 (denoising benchmark, 64x64)": fcn,
        "fcn 16/32 (light, 64x64)": small,
    }


def rate(n: int, fn, repeats: int = 3) -> float:
    fn()  # warm-up
    best = min(timed(fn) for _ in range(repeats))
    return n / best


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def command(args: list[str], threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "aekit", *args], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="images")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--bm3d", type=int, default=3, help="images timed with BM3D")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    faces = load_olivetti().images  # (400, 1, 64, 64)
    gen = torch.Generator().manual_seed(0)
    x = (faces[torch.arange(args.n) % len(faces)] + 0.1 * torch.randn(args.n, 1, 64, 64, generator=gen)).clamp(0, 1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "images"
        folder.mkdir()
        for i, img in enumerate(x):
            write_image(folder / f"{i:05d}.png", img.permute(1, 2, 0).numpy())
        for name, cfg in configs().items():
            run = tmp / name.split(" (")[0].replace(" ", "-").replace("/", "-")
            aekit.train(replace(cfg, **{"train.epochs": 1, "train.threads": args.threads}), out=run,
                        overwrite=True, progress=False, log=lambda s: None)
            model = load(run)
            images = list(x)
            flops = _forward_flops(model, x[:4])
            lib_denoise = rate(args.n, lambda: reconstruct(model, images))
            cli_denoise = args.n / command(["denoise", str(run), str(folder), "--out", str(tmp / "out"),
                                            "--overwrite"], args.threads)
            if model.decodes_codes:
                batch = torch.stack(images)
                lib_encode = rate(args.n, lambda: encode(model, _working(model, batch)))  # resize included
                cli_encode = args.n / command(["encode", str(run), str(folder), "--out", str(tmp / "codes.npy"),
                                               "--overwrite"], args.threads)
            else:
                lib_encode = cli_encode = None
            rows.append((name, flops, lib_denoise, cli_denoise, lib_encode, cli_encode))
    from bm3d import bm3d

    noisy = x[: args.bm3d, 0].numpy().astype(np.float64)
    t = time.perf_counter()
    for img in noisy:
        bm3d(img, 0.1)
    bm3d_rate = args.bm3d / (time.perf_counter() - t)

    print(f"\n{machine_line('cpu')}; {args.n} grayscale 64x64 images")
    print("images/s: library = images already in memory; command = `aekit denoise|encode` on the folder of PNGs, "
          "process start and file reading/writing included")
    print(f"{'model':44} | {'GFLOP/img':>9} | {'denoise lib':>11} | {'denoise cmd':>11} | {'encode lib':>10} | {'encode cmd':>10}")
    fmt = lambda v: "-" if v is None else f"{v:,.0f}"  # noqa: E731
    for name, flops, a, b, c, d in rows:
        print(f"{name:44} | {flops:9.3f} | {fmt(a):>11} | {fmt(b):>11} | {fmt(c):>10} | {fmt(d):>10}")
    print(f"{'BM3D (sigma 0.1)':44} | {'':>9} | {bm3d_rate:11.2f} | {'':>11} | {'':>10} | {'':>10}")
    keys = ("model", "gflop_per_image", "denoise_library", "denoise_command", "encode_library", "encode_command")
    save("inference", settings=vars(args), rows=[dict(zip(keys, r)) for r in rows] + [{"model": "bm3d", "denoise_library": bm3d_rate}])


def _working(model, batch: torch.Tensor) -> torch.Tensor:
    from aekit.data import resize

    pre = getattr(model, "preprocess", None) or {}
    return resize(batch, tuple(pre.get("size") or model.config.input_size), pre.get("resize", "bicubic"))


def _forward_flops(model, x: torch.Tensor) -> float:
    """GFLOP of one image's pass through ``reconstruct`` (model forward at its working size)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        reconstruct(model, list(x))
    return counter.get_total_flops() / len(x) / 1e9


if __name__ == "__main__":
    main()
