"""Channels-last (NHWC) convolution weights against the default layout (NCHW), per architecture.

Models whose class sets ``channels_last`` get NHWC weights from ``create_model`` (the math is the same;
oneDNN's convolutions are faster on that layout). Times whole training steps (forward, loss, backward,
Adam) of each architecture at the precision ``amp = "auto"`` picks on this CPU, and in float32 where that
differs, with the weights in either layout, interleaved rounds in one process; prints medians and
NCHW / NHWC (> 1: channels-last faster), and which layout the product uses.

    python benchmarks/channels_last.py [--rounds 3] [--steps 6] [--threads 2]
"""

from __future__ import annotations

import statistics

import torch

from aekit.models import create_model, model_class
from aekit.training.devices import autocast_for, resolve_amp
from common import machine_line, median_ms, save, step_options

CASES = [("unet", 32, 16), ("unet", 64, 16), ("fcn", 64, 16), ("hybrid", 64, 50), ("conv", 64, 50), ("vae", 64, 50)]


def training_step(name: str, size: int, batch: int, amp: str, layout: torch.memory_format):
    torch.manual_seed(0)
    model = create_model(name, input_size=(size, size)).to(memory_format=layout).train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    autocast = autocast_for(amp, torch.device("cpu"))
    x = torch.rand(batch, 1, size, size)

    def step():
        with autocast():
            out = model(x)
        out.loss.backward()
        opt.step()
        opt.zero_grad()

    return step


def main() -> None:
    args = step_options(__doc__, rounds=3, steps=6)
    auto = resolve_amp("auto", torch.device("cpu"))[0]
    print(machine_line("cpu"))
    print("| model | size, batch | precision | NCHW ms | NHWC ms | NCHW / NHWC | the product |")
    print("| --- | --- | --- | ---: | ---: | ---: | --- |")
    rows = []
    for amp in dict.fromkeys([auto, "off"]):
        for name, size, batch in CASES:
            nchw, nhwc = [], []
            steps = {layout: training_step(name, size, batch, amp, layout)
                     for layout in (torch.contiguous_format, torch.channels_last)}
            for _ in range(args.rounds):  # interleaved, so drift in the machine's speed hits both
                nchw.append(median_ms(steps[torch.contiguous_format], args.steps))
                nhwc.append(median_ms(steps[torch.channels_last], args.steps))
            a, b = statistics.median(nchw), statistics.median(nhwc)
            product = "NHWC" if model_class(name).channels_last else "NCHW"
            precision = "float32" if amp == "off" else amp
            print(f"| {name} | {size}x{size}, {batch} | {precision} | {a:.0f} | {b:.0f} | {a / b:.2f} | {product} |",
                  flush=True)
            rows.append({"model": name, "size": size, "batch": batch, "amp": amp, "nchw_ms": nchw, "nhwc_ms": nhwc,
                         "product": product})
    save("channels_last", settings=vars(args), rows=rows)


if __name__ == "__main__":
    main()
