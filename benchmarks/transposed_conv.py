"""bf16 transposed convolutions on the CPU: PyTorch's kernel against aekit's phase convolution.

Times forward + backward of each strided transposed convolution of the denoising benchmark's ``fcn``
(64x64, channels 32/64/128, batch 16) under bf16 autocast, computed natively and as
``layers.phase_conv_transpose2d``, then whole training steps of that model with either path,
interleaved rounds in one process. Prints medians and the ratio native / phase (> 1: phase faster).

    python benchmarks/transposed_conv.py [--rounds 3] [--steps 25] [--threads 2]
"""

from __future__ import annotations

import statistics

import torch

from aekit.models import create_model, layers
from common import machine_line, median_ms, save, step_options


def layer_step(cin: int, cout: int, size: int, phase: bool):
    layer = layers.SameConvTranspose2d(cin, cout, 3, 2)
    x = torch.randn(16, cin, size, size, requires_grad=True)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            if phase:
                y = layers.phase_conv_transpose2d(x, layer.conv.weight, layer.conv.bias, 2, (0, 0), (2 * size, 2 * size))
            else:
                y = layer.conv(x)[..., : 2 * size, : 2 * size]
        y.float().sum().backward()

    return step


def model_step(phase: bool):
    torch.manual_seed(0)
    model = create_model("fcn", input_size=(64, 64), channels=(32, 64, 128), code_length=128, loss="mse")
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(16, 1, 64, 64)

    def step():
        layers._bf16_on_cpu = real if phase else (lambda t: False)  # native: PyTorch's kernel
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x, x)
            out.loss.backward()
            opt.step()
            opt.zero_grad()
        finally:
            layers._bf16_on_cpu = real

    return step


real = layers._bf16_on_cpu


def main() -> None:
    args = step_options(__doc__, rounds=3, steps=25)
    print(f"{machine_line('cpu')}; bf16 autocast, batch 16")
    rows = []
    cases = [("64 -> 32 at 32x32", (64, 32, 32)), ("128 -> 64 at 16x16", (128, 64, 16)),
             ("128 -> 128 at 8x8", (128, 128, 8))]
    print("| what | native ms | phase ms | native / phase |")
    print("| --- | --- | --- | --- |")
    for name, (cin, cout, size) in cases:
        native = [median_ms(layer_step(cin, cout, size, False), args.steps) for _ in range(args.rounds)]
        phase = [median_ms(layer_step(cin, cout, size, True), args.steps) for _ in range(args.rounds)]
        n, p = statistics.median(native), statistics.median(phase)
        print(f"| {name}, fwd + bwd | {n:.1f} | {p:.1f} | {n / p:.2f} |", flush=True)
        rows.append({"what": f"{name}, fwd + bwd", "native_ms": native, "phase_ms": phase})
    native, phase = [], []
    for _ in range(args.rounds):  # interleaved, so drift in the machine's speed hits both
        native.append(median_ms(model_step(False), args.steps, skip=5))
        phase.append(median_ms(model_step(True), args.steps, skip=5))
    n, p = statistics.median(native), statistics.median(phase)
    print(f"| fcn 64x64 training step | {n:.1f} | {p:.1f} | {n / p:.2f} |")
    rows.append({"what": "fcn 64x64 training step", "native_ms": native, "phase_ms": phase})
    save("transposed_conv", settings=vars(args), rows=rows)


if __name__ == "__main__":
    main()
