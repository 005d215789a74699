"""A linear code with learned nonlinear corrections, started at PCA: the compression model.

    encode   z = W_e x + b_e                                       (B, code_length)   linear
    decode   r = W_d z + b_d  (+ mlp(z), hidden > 0)               the linear decoder plus an MLP correction
             y = r + refine(r)  (refine_channels > 0)              a small conv net that sharpens r
             (clipped to [0, 1] in eval mode; training sees the unclipped sum)

The trainer initialises it from the data (``data_init``; on by default for this model, ``init =
"random"`` turns it off): W_e, W_d and the biases become the principal components and the mean of the
training images (with their left-right mirror images when ``train.hflip`` is on), and the corrections'
last layers start a thousand times smaller than usual. So training starts from PCA's reconstruction,
the best linear one, and only has to learn what PCA cannot: the MLP bends the decoder's linear
subspace, the convolutional refiner restores local detail (edges, eyes) that a few components blur. The linear
parts learn at a tenth of the learning rate (``linear_lr``).
With a few hundred images the MLP soon learns the training faces themselves, so it is off by default
(``hidden = 0``): model selection on whole held-out people rejected it every time (benchmarks/README.md);
the training run's own selection (``train.select``) picks the epoch, the PCA start included.
Dense layers over every pixel: meant for small images (the faces at 32x32 or 64x64), like PCA itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..typed import option
from .base import MAX_LAYERS, MAX_WIDTH, Autoencoder, ModelConfig
from .layers import Linear
from .losses import LossName
from .registry import register

SMALL_START = 1e-3  # the corrections' last layers start at this fraction of PyTorch's default init
PCA_FLOAT64_VALUES = 10_000_000  # PCA in float64 up to this many values (images x pixels), else float32


@dataclass
class HybridConfig(ModelConfig):
    name: str = option("hybrid", "registered architecture")
    code_length: int = option(64, "length of the code: as many components as PCA would keep")
    loss: LossName = option("mse", "reconstruction loss")
    hidden: int = option(0, "width of an MLP correction of the decoder; 0 (the default): none (it learns the "
                         "training subjects: worth it only for new images of the same subjects, e.g. 512 at 32 values; "
                         f"at most {MAX_WIDTH})")
    refine_channels: int = option(32, f"channels of the convolutional refiner; 0: none (at most {MAX_WIDTH})")
    refine_layers: int = option(5, f"3x3 convolutions in the refiner (the middle one dilated by 2; at most {MAX_LAYERS})")
    init: Literal["pca", "random"] = option("pca", "pca: the linear parts start at the training images' PCA")
    linear_lr: float = option(0.1, "learning rate of the linear encoder and decoder, as a fraction of train.lr")

    def check(self) -> str | None:
        if self.hidden < 0 or self.refine_channels < 0:
            return "model.hidden and model.refine_channels must be 0 or more"
        if max(self.hidden, self.refine_channels) > MAX_WIDTH or self.refine_layers > MAX_LAYERS:
            return (f"model.hidden and model.refine_channels must be at most {MAX_WIDTH} and model.refine_layers at "
                    f"most {MAX_LAYERS}, got {self.hidden}, {self.refine_channels} and {self.refine_layers}")
        if self.linear_lr < 0:
            return f"model.linear_lr must be 0 or more, got {self.linear_lr}"
        if self.refine_channels and self.refine_layers < 2:
            return "model.refine_layers must be at least 2"
        return None


def _refiner(channels: int, width: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    cin = channels
    for i in range(layers - 1):
        dilation = 2 if i == (layers - 1) // 2 else 1
        mods += [nn.Conv2d(cin, width, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)]
        cin = width
    mods.append(nn.Conv2d(cin, channels, 3, padding=1))
    return nn.Sequential(*mods)


def _start_small(layer: nn.Module) -> None:
    with torch.no_grad():
        layer.weight.mul_(SMALL_START)
        layer.bias.zero_()


@register("hybrid", HybridConfig)
class HybridAutoencoder(Autoencoder):
    """Linear (PCA-initialised) encoder and decoder plus a convolutional correction (and an MLP one, hidden > 0)."""

    data_init_images = 4096  # PCA looks at up to this many training images
    channels_last = True  # NHWC convolutions: faster training steps on CPU (benchmarks/README.md#performance)
    float32_because = "bf16 rounds away its small refinements of the PCA start"  # benchmarks/README.md#compression

    def __init__(self, config: HybridConfig):
        super().__init__(config)
        c = config
        h, w = c.input_size
        self.shape = (c.in_channels, h, w)
        d = math.prod(self.shape)
        self.encoder = Linear(d, c.code_length)
        self.decoder = Linear(c.code_length, d)
        self.mlp = None
        if c.hidden:
            self.mlp = nn.Sequential(Linear(c.code_length, c.hidden), nn.ReLU(inplace=True), Linear(c.hidden, d))
            _start_small(self.mlp[-1])
        self.refine = None
        if c.refine_channels:
            self.refine = _refiner(c.in_channels, c.refine_channels, c.refine_layers)
            _start_small(self.refine[-1])

    def param_groups(self, lr: float) -> list[dict]:
        """The optimiser's parameter groups: the linear parts learn at ``linear_lr`` x ``lr``, so the
        PCA start moves slowly (on unseen people a fast-moving basis soon fits the training faces)."""
        linear = [*self.encoder.parameters(), *self.decoder.parameters()]
        ids = {id(p) for p in linear}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": linear, "lr": lr * self.config.linear_lr}] + ([{"params": rest, "lr": lr}] if rest else [])

    @property
    def needs_data_init(self) -> bool:
        return self.config.init == "pca"

    @torch.no_grad()
    def data_init(self, x: torch.Tensor, target: torch.Tensor | None = None) -> bool:
        """Set the linear encoder and decoder to the PCA of ``target`` (the clean images; ``x`` when
        None): the decoder's columns are the leading principal components, its bias the mean image,
        and the encoder projects onto them. With fewer images than code units the remaining units
        keep their random start (one image: its mean is itself, and no direction carries variance)."""
        t = (x if target is None else target).flatten(1)
        if not len(t):
            return False
        dtype = torch.float64 if t.numel() <= PCA_FLOAT64_VALUES else torch.float32
        t = t.to(dtype)
        mean = t.mean(0)
        _, _, vt = torch.linalg.svd(t - mean, full_matrices=False)
        k = min(self.config.code_length, len(vt))
        comps = vt[:k].to(self.encoder.weight.dtype)
        mean = mean.to(comps.dtype)
        self.encoder.weight[:k] = comps
        self.decoder.weight[:, :k] = comps.T
        self.decoder.bias.copy_(mean)
        self.encoder.bias.copy_(-(self.encoder.weight @ mean))
        return True

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        r = self.decoder(z)
        if self.mlp is not None:
            r = r + self.mlp(z)
        r = r.view(-1, *self.shape)
        if self.refine is not None:
            r = r + self.refine(r)
        return r if self.training else r.clamp(0.0, 1.0)
