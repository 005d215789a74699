"""Model selection on a validation split carved from the training images (``train.select``).

The start is the first candidate (epoch 0: a data-initialised model, such as the hybrid's PCA start,
can never end below it on validation); every epoch is scored on the validation images (seeded, so
every epoch sees the same corrupted copies); the weights of the best epoch are kept and are the
model fit() returns; training stops when the validation loss has not improved for ``patience``
epochs. The test split is never looked at.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import select
from ..noise import SEED_VALIDATION
from ..pipeline import Pipeline
from .evaluate import evaluate

MIN_IMAGES = 10  # fewer training images than this: fit() carves no validation split of its own


def weights_copy(weights: torch.nn.Module | dict) -> dict[str, torch.Tensor]:
    """A copy on the CPU of a model's weights (or of a state dict), kept while training goes on."""
    state = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def carve(images, fraction: float, seed: int):
    """(fit images, validation images): a seeded random ``fraction`` of ``images`` (a tensor or a
    streaming Dataset) held out, at least one; (images, None) when there are fewer than MIN_IMAGES."""
    n = len(images)
    if n < MIN_IMAGES:
        return images, None
    order = np.random.RandomState(seed).permutation(n)
    n_val = max(1, int(round(n * fraction)))
    return select(images, np.sort(order[n_val:])), select(images, np.sort(order[:n_val]))


class Selection:
    def __init__(self, model: torch.nn.Module, images, pipeline: Pipeline, *, seed: int, patience: int):
        self.model, self.images, self.pipeline = model, images, pipeline
        self.seed, self.patience = seed + SEED_VALIDATION, patience
        self.best, self.best_epoch, self.since_best = float("inf"), None, 0
        self.best_state: dict | None = None
        self.start: dict | None = None  # the validation figures of the start (epoch 0)
        self.start_setup = ""  # how a data-dependent start was set up (data_init.choose_start), in words

    def score(self) -> dict[str, float]:
        return evaluate(self.model, self.images, pipeline=self.pipeline, seed=self.seed)

    def consider(self, epoch: int, figures: dict[str, float]) -> bool:
        """Keep the weights when ``figures`` (the current model's) beat the best so far; True when they do."""
        if figures["loss_per_sample"] < self.best:
            self.best, self.best_epoch, self.since_best = figures["loss_per_sample"], epoch, 0
            self.best_state = weights_copy(self.model)
            return True
        self.since_best += 1
        return False

    def score_start(self) -> dict[str, float]:
        self.start = self.score()
        self.consider(0, self.start)
        return self.start

    @property
    def exhausted(self) -> bool:
        return bool(self.patience) and self.since_best >= self.patience

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "since_best": self.since_best,
                "best_state": self.best_state, "start": self.start, "start_setup": self.start_setup}

    def restore(self, state: dict) -> None:
        self.best, self.best_epoch = float(state["best"]), state["best_epoch"]
        self.since_best, self.best_state, self.start = int(state["since_best"]), state["best_state"], state["start"]
        self.start_setup = state.get("start_setup", "")

    def summary(self, epochs: int) -> dict:
        return {"chosen_epoch": self.best_epoch, "validation_loss": self.best, "epochs_run": epochs,
                "start": self.start, "start_setup": self.start_setup, "validation_images": len(self.images)}
