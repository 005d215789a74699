"""What the model sees: augment (flip, shift, rotate and zoom, intensity, synthetic images), corrupt, fit to the working size.

One :class:`Pipeline` turns a batch of clean images into (model input, loss target) for training,
for held-out evaluation and for the baselines, so every consumer sees the same images:

    train_pair(x, g)   flip, shift, rotate/zoom, gamma/contrast, a fraction of dead leaves (augmentation,
                       training only), then view,
                       then a random window of both copies (train.crop)
    view(x, g)         fit to the working size and corrupt (seeded by ``g``); with ``native``, corrupt
                       first and then fit both copies (the reference adds noise at 64 x 64, then
                       resizes to 32 x 32)

:func:`prepare_data` loads a run's source, splits it and fits it: the images are fitted once, up front
(the fast path), and the pipeline's fit is a no-op on them, unless the noise is added at the native
size (``noise.where = "native"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import math

import torch
import torch.nn.functional as F

from .config import Config, load_from_config, working_size
from .data import ImageData, fit_images, mix_synthetic, select, split_indices, validation_split
from .models import model_class
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


def random_affine(x: torch.Tensor, degrees: float, zoom: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each image of ``x`` (B, C, H, W) by its own random angle in [-degrees, degrees] and scale
    it by a random factor in [1/(1 + zoom), 1 + zoom] (log-uniform) about its centre; bicubic, the
    edges mirrored, values kept in [0, 1]."""
    b = len(x)
    u = (torch.rand(2, b, generator=generator, device=generator.device) * 2 - 1).to(x.device)
    angle, scale = u[0] * math.radians(degrees), torch.exp(-u[1] * math.log1p(zoom))  # output -> source scale
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bicubic", padding_mode="reflection", align_corners=False).clamp(0, 1)


def random_intensity(x: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """A random gamma (x ** exp(u), |u| <= amount) and then a random contrast about the image's mean
    (a factor in [1 - amount, 1 + amount]) for each image of ``x``; values kept in [0, 1]."""
    u = (torch.rand(2, len(x), 1, 1, 1, generator=generator, device=generator.device) * 2 - 1).to(x.device)
    x = x.clamp(1e-6, 1) ** torch.exp(u[0] * amount)
    mean = x.mean((1, 2, 3), keepdim=True)
    return ((x - mean) * (1 + u[1] * amount) + mean).clamp(0, 1)


def random_crop(pair: tuple[torch.Tensor, torch.Tensor], size: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random ``size`` x ``size`` window of each image of both tensors of ``pair`` (B, C, H, W)
    (``train.crop``); a side no larger than ``size`` is kept whole."""
    x, y = pair
    b, _, h, w = x.shape
    ch, cw = min(size, h), min(size, w)
    top = torch.randint(0, h - ch + 1, (b,), generator=generator, device=generator.device).to(x.device)
    left = torch.randint(0, w - cw + 1, (b,), generator=generator, device=generator.device).to(x.device)
    rows = (top[:, None] + torch.arange(ch, device=x.device))[:, :, None]  # (B, ch, 1)
    cols = (left[:, None] + torch.arange(cw, device=x.device))[:, None, :]  # (B, 1, cw)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return tuple(t[batch, :, rows, cols].permute(0, 3, 1, 2) for t in (x, y))


@dataclass
class Pipeline:
    corrupt: Corruption | None = None  # (x, generator) -> corrupted x; None: the clean images are the input
    size: tuple[int, int] | None = None  # the working size both copies are fitted to; None: as they come
    fit: str = "resize"  # how (data.fit): resize, crop, pad, window or tiles
    method: str = "bicubic"  # resize method (data.resize)
    hflip: bool = False  # training: flip each image left-right with probability 1/2
    shift: int = 0  # training: move each image by up to this many pixels along each axis
    rotate: float = 0.0  # training: rotate each image by up to this many degrees (train.rotate)
    zoom: float = 0.0  # training: scale each image by up to 1 + zoom, or down to 1 / (1 + zoom) (train.zoom)
    intensity: float = 0.0  # training: random gamma and contrast of up to this much (train.intensity)
    synthetic: float = 0.0  # training: this fraction of each batch replaced by dead leaves (train.synthetic)
    crop: int = 0  # training: a random window of this side of each image and its target (train.crop); 0: whole
    native: bool = False  # corrupt at the images' native size, then fit both copies (noise.where = "native")

    @classmethod
    def for_run(cls, cfg: Config, *, noise: NoiseConfig | None = None) -> "Pipeline":
        """The pipeline of a run's configuration: its noise (or ``noise``, added where the run adds
        it), working size, fit and augmentation."""
        return cls(make_corruption(cfg.noise if noise is None else noise), working_size(cfg), cfg.data.fit,
                   cfg.data.resize, native=cfg.noise.where == "native", **augmentation(cfg.train))

    @classmethod
    def for_training(cls, train) -> "Pipeline":
        """The augmentation of a :class:`~aekit.TrainConfig` alone, on clean images as they are (fit()'s default)."""
        return cls(**augmentation(train))

    @property
    def takes_native(self) -> bool:
        """Whether the pipeline wants the images at their native size (it corrupts before fitting)."""
        return self.corrupt is not None and self.native

    def fitted(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.size is None else fit_images(x, self.size, self.fit, self.method)

    def augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Random flips, shifts, rotations and zooms, then gamma and contrast, then a fraction of the batch
        replaced by synthetic dead-leaves images, drawn from ``g`` (training only)."""
        if self.hflip:
            flip = torch.rand(len(x), generator=g, device=g.device).to(x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.shift:
            x = random_shift(x, self.shift, g)
        if self.rotate or self.zoom:
            x = random_affine(x, self.rotate, self.zoom, g)
        if self.intensity:
            x = random_intensity(x, self.intensity, g)
        if self.synthetic:
            x = mix_synthetic(x, self.synthetic, g)
        return x

    def view(self, x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(model input, loss target) of clean images ``x``: fitted, and corrupted with ``g`` (at the
        working size, or first at the native size with ``native``)."""
        target = self.fitted(x)
        if self.corrupt is None:
            return target, target
        return (self.fitted(self.corrupt(x, g)) if self.native else self.corrupt(target, g)), target

    def train_pair(self, x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(model input, loss target) of a clean training batch: augmented, viewed, and cropped
        (a window of both, after the corruption: a noise map stays aligned with the image)."""
        pair = self.view(self.augment(x, g), g)
        if self.crop and max(pair[0].shape[-2:]) > self.crop:
            pair = random_crop(pair, self.crop, g)
        return pair


def augmentation(train) -> dict:
    """The :class:`Pipeline` fields of a :class:`~aekit.TrainConfig`'s augmentation."""
    return {"hflip": train.hflip is True, "shift": train.shift, "rotate": train.rotate, "zoom": train.zoom,
            "intensity": train.intensity, "synthetic": train.synthetic, "crop": train.crop}


@dataclass
class RunData:
    data: ImageData  # the whole source at native resolution (a folder: at the working size)
    train_index: list[int]  # the images the model trains on (without the validation images)
    test_index: list[int]  # the held-out split
    fitted: torch.Tensor  # every image at the working size; streaming: an ImageFiles dataset
    size: tuple[int, int]  # the working size
    val_index: list[int] = field(default_factory=list)  # train.select: carved from the training split
    validation: str = "none"  # how the validation split was carved

    def at(self, index: list[int], native: bool = False):
        return select(self.data.images if native else self.fitted, index)

    @property
    def train_x(self):
        return self.at(self.train_index)

    @property
    def test_x(self):
        return self.at(self.test_index)

    @property
    def val_x(self):
        return self.at(self.val_index)

    def model_inputs(self, pipeline: Pipeline):
        """(training, held-out, validation) images as the pipeline takes them: at the native size when it
        corrupts first and fits after, else at the working size."""
        native = pipeline.takes_native
        return self.at(self.train_index, native), self.at(self.test_index, native), self.at(self.val_index, native)


def prepare_data(cfg: Config, *, decode: bool = True) -> RunData:
    """Load the source, split it (seeded) and fit it to the working size (a model that runs at any size,
    without a ``data.size``: the images' own, which they must then share); with ``train.select``, carve
    the validation split out of the training images (seeded by the run's seed). ``decode``: False streams
    a folder's files unchecked, each decoded when asked for (:func:`aekit.load_data`)."""
    size = working_size(cfg)
    own = cfg.data.size is None and model_class(cfg.model.name).any_size  # at the images' own size
    data = load_from_config(cfg.data, size=None if own else size, decode=decode)
    if own:
        size = tuple(data.images.shape[-2:])
    tr, te = split_indices(data, split=cfg.data.split, test_fraction=cfg.data.test_fraction)
    x = fit_images(data.images, size, cfg.data.fit, cfg.data.resize, name=data.source)
    run = RunData(data, list(tr), list(te), x, size)
    if cfg.train.select:
        fit_index, val_index, how = validation_split(data, tr, fraction=cfg.train.val_fraction, seed=cfg.seed)
        run.train_index, run.val_index, run.validation = list(fit_index), list(val_index), how
    return run
