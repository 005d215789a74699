"""What the model sees: augment (flip, shift), corrupt at the native size, fit to the working size.

One :class:`Pipeline` turns a batch of clean images into (model input, loss target) for training,
for held-out evaluation and for the baselines, so every consumer sees the same images:

    train_pair(x, g)   flip and shift (augmentation, training only), then view
    view(x, g)         corrupt (seeded by ``g``), then fit both the corrupted and the clean copy to
                       the working size (the reference adds noise at 64 x 64, then resizes to 32 x 32)

:func:`prepare_data` loads a run's source, splits it and fits it: without corruption the images are
fitted once, up front (the fast path), and the pipeline's fit is a no-op on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import Config, load_from_config, working_size
from .data import ImageData, fit_images, select, split_indices
from .noise import Corruption, NoiseConfig, make_corruption


def random_shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Move each image of ``x`` (B, C, H, W) by its own random whole-pixel offset in [-pixels, pixels]
    along each axis (``train.shift``); the pixels that come in repeat the edge."""
    b, _, h, w = x.shape
    dy, dx = (torch.randint(-pixels, pixels + 1, (2, b), generator=generator, device=generator.device)
              .to(x.device))
    rows = (torch.arange(h, device=x.device) - dy[:, None]).clamp(0, h - 1)  # (B, H): source row of each row
    cols = (torch.arange(w, device=x.device) - dx[:, None]).clamp(0, w - 1)
    return x[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


@dataclass
class Pipeline:
    corrupt: Corruption | None = None  # (x, generator) -> corrupted x; None: the clean images are the input
    size: tuple[int, int] | None = None  # the working size both copies are fitted to; None: as they come
    fit: str = "resize"  # how: resize, crop or pad (data.fit)
    method: str = "bicubic"  # resize method (data.resize)
    hflip: bool = False  # training: flip each image left-right with probability 1/2
    shift: int = 0  # training: move each image by up to this many pixels along each axis

    @classmethod
    def for_run(cls, cfg: Config, *, noise: NoiseConfig | None = None) -> "Pipeline":
        """The pipeline of a run's configuration: its noise (or ``noise``), working size, fit and augmentation."""
        return cls(make_corruption(cfg.noise if noise is None else noise), working_size(cfg), cfg.data.fit,
                   cfg.data.resize, cfg.train.hflip, cfg.train.shift)

    def fitted(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.size is None else fit_images(x, self.size, self.fit, self.method)

    def augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Random flips, then random shifts, drawn from ``g`` (training only)."""
        if self.hflip:
            flip = torch.rand(len(x), generator=g, device=g.device).to(x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.shift:
            x = random_shift(x, self.shift, g)
        return x

    def view(self, x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(model input, loss target) of clean images ``x``: corrupted with ``g``, both fitted."""
        target = self.fitted(x)
        if self.corrupt is None:
            return target, target
        return self.fitted(self.corrupt(x, g)), target

    def train_pair(self, x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.view(self.augment(x, g), g)


@dataclass
class RunData:
    data: ImageData  # the whole source at native resolution (a folder: at the working size)
    train_index: list[int]
    test_index: list[int]
    train_x: torch.Tensor  # (N_train, C, H, W) at the working size; streaming: an ImageFiles dataset
    test_x: torch.Tensor  # (N_test, C, H, W) at the working size (may be empty); streaming: ImageFiles
    size: tuple[int, int]  # the working size

    @property
    def train_native(self):
        return select(self.data.images, self.train_index)

    @property
    def test_native(self):
        return select(self.data.images, self.test_index)

    def model_inputs(self, pipeline: Pipeline):
        """(training images, held-out images) as the pipeline takes them: at the native size when it
        corrupts (noise first, then the fit), else already at the working size."""
        if pipeline.corrupt is None:
            return self.train_x, self.test_x
        return self.train_native, self.test_native


def prepare_data(cfg: Config) -> RunData:
    """Load the source, split it (seeded) and fit both parts to the working size."""
    size = working_size(cfg)
    data = load_from_config(cfg.data, size=size)
    tr, te = split_indices(data, split=cfg.data.split, test_fraction=cfg.data.test_fraction)
    x = fit_images(data.images, size, cfg.data.fit, cfg.data.resize, name=data.source)
    return RunData(data, list(tr), list(te), select(x, tr), select(x, te), size)
