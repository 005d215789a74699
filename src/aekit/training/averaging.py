"""Weight averaging (``train.ema``): an exponential moving average of the weights, updated after every
optimisation step, is the model that is validated, selected, evaluated and saved.

The average smooths out the last steps' noise (a denoiser trained on a few hundred faces gains a few
tenths of a dB on unseen people). Its decay warms up as ``min(decay, (1 + t) / (10 + t))`` after ``t``
steps, so the average follows the early, fast-moving weights instead of dragging the start along.
Floating-point parameters and buffers are averaged; integer buffers (step counters) are copied.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float):  # decay in (0, 1): config.validate checks
        self.decay, self.steps = decay, 0
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Move the average toward ``model``'s current weights (after an optimisation step)."""
        self.steps += 1
        keep = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for k, v in model.state_dict().items():
            a = self.average[k]
            if a.is_floating_point():
                a.lerp_(v.detach().to(a.dtype), 1.0 - keep)
            else:
                a.copy_(v)

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """``model`` holds the averaged weights inside the block, its own again after it."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.average)
        try:
            yield
        finally:
            model.load_state_dict(own)

    def state(self) -> dict:
        return {"steps": self.steps, "average": {k: v.detach().cpu().clone() for k, v in self.average.items()}}

    def restore(self, state: dict) -> None:
        self.steps = int(state["steps"])
        for k, v in state["average"].items():
            self.average[k].copy_(v)


def averaging(model: torch.nn.Module, decay: float) -> WeightAverage | None:
    """The weight average of ``train.ema`` (None when it is 0: off)."""
    return WeightAverage(model, decay) if decay else None


@contextlib.contextmanager
def averaged(average: WeightAverage | None, model: torch.nn.Module) -> Iterator[None]:
    """The averaged weights in ``model`` inside the block (a no-op without averaging)."""
    if average is None:
        yield
    else:
        with average.applied(model):
            yield
