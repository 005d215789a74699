"""What float32 wide dense layers cost under bf16 on the CPU (models/layers.py: ``Linear``).

Dense layers with ``layers.WIDE_DENSE`` or more features compute in float32 under CPU bf16 autocast,
because torch 2.13's bf16 matrix product on CPUs with AMX dies with SIGFPE on some of their shapes
(a batch of 12 through the conv model's encoder at 64x64). Times whole training steps of that model
(64x64, batch 50, bf16 autocast) with the dense layers in float32 (the product) and in bf16 (the
threshold raised out of reach; batch 50 does not crash), interleaved rounds in one process.

    python benchmarks/bf16_dense.py [--rounds 5] [--steps 8] [--threads 2]
"""

from __future__ import annotations

import statistics
import time

import torch

from aekit.models import create_model, layers
from common import machine_line, save, step_options


def step_ms(model, opt, x, steps: int, wide: int, skip: int = 2) -> float:
    layers.WIDE_DENSE = wide
    try:
        for i in range(steps + skip):
            if i == skip:
                t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x)
            out.loss.backward()
            opt.step()
            opt.zero_grad()
        return (time.perf_counter() - t) / steps * 1000
    finally:
        layers.WIDE_DENSE = PRODUCT


PRODUCT = layers.WIDE_DENSE


def main() -> None:
    args = step_options(__doc__, rounds=5, steps=8)
    print(f"{machine_line('cpu')}; conv model at 64x64, batch 50, bf16 autocast")
    torch.manual_seed(0)
    model = create_model("conv", input_size=(64, 64))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(50, 1, 64, 64)
    fp32, bf16 = [], []
    for _ in range(args.rounds):  # interleaved, so drift in the machine's speed hits both
        fp32.append(step_ms(model, opt, x, args.steps, PRODUCT))
        bf16.append(step_ms(model, opt, x, args.steps, 2**62))
    a, b = statistics.median(fp32), statistics.median(bf16)
    print("| dense layers | ms per step, median (min-max) |")
    print("| --- | --- |")
    print(f"| float32 (the product) | {a:.0f} ({min(fp32):.0f}-{max(fp32):.0f}) |")
    print(f"| bf16 | {b:.0f} ({min(bf16):.0f}-{max(bf16):.0f}) |")
    print(f"float32 / bf16 dense layers: {a / b:.2f}")
    save("bf16_dense", settings=vars(args), rows=[{"dense": "float32", "ms": fp32}, {"dense": "bf16", "ms": bf16}])


if __name__ == "__main__":
    main()
