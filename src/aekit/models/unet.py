"""A residual U-Net denoiser in the style of DRUNet: it predicts the noise, works at any image size.

Default configuration (grayscale, 24 channels at full resolution, three down-samplings):

    head   conv 3x3 -> 24                                     (B, 24, H, W)
    enc_i  2 residual blocks (conv-ReLU-conv + x), then a 2x2 stride-2 conv doubling the width
                                                              (B, 48, H/2, W/2) ... (B, 192, H/8, W/8)
    mid    2 residual blocks at 192 channels                  the code (flattened)
    dec_i  2x2 transposed conv halving the width, + the encoder's features (additive skip), 2 blocks
    tail   conv 3x3 -> C; output = input + tail (clipped to [0, 1] in eval mode)

Inputs whose sides are not multiples of 8 are padded by repeating their edges and cropped back (on the
LFW faces at 25x25, 0.26 dB better than padding by reflection, which mirrors the noise). Measured on
unseen people (benchmarks/README.md#denoising), this is what beats the classical denoisers where the
plain U-Net (``fcn``: concatenated skips, a sigmoid output) and a DnCNN do not: the additive skips and
the noise-predicting output keep the image's own detail and learn what noise looks like rather than
what the training faces look like.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..typed import option
from .base import MAX_LAYERS, MAX_WIDTH, Autoencoder, ModelConfig
from .layers import padding_to_multiple
from .losses import LossName, reconstruction_loss
from .registry import register


MAX_LEVELS = 16  # down-samplings: 2**16 is the largest side (data.MAX_SIDE)


@dataclass
class UNetConfig(ModelConfig):
    name: str = option("unet", "registered architecture")
    code_length: int = option(192, "channels of the code feature map, at 1/2**levels of the size")
    loss: LossName = option("psnr", "reconstruction loss (psnr: trains for the mean of per-image PSNR)")
    channels: int = option(24, "channels at full resolution (doubled at every level: channels x 2**levels at most "
                           f"{MAX_WIDTH})")
    levels: int = option(3, "down-samplings (the size must allow 2**levels; smaller inputs are padded; at most "
                         f"{MAX_LEVELS})")
    blocks: int = option(2, f"residual blocks per level and side (at most {MAX_LAYERS})")
    residual: bool = option(True, "predict the noise: output = input + correction (false: the image itself)")
    level_input: bool = option(False, "also give the network its input's noise level, estimated from the image "
                               "itself (median absolute finest-scale wavelet coefficient), as an extra channel",
                               legacy=False, since="2026-12-02T15:05")

    @classmethod
    def derived(cls, raw: dict) -> dict:
        """code_length follows channels and levels, where a table sets them and not it."""
        width, levels = raw.get("channels", cls.channels), raw.get("levels", cls.levels)
        if "code_length" in raw or not all(isinstance(v, int) and v >= 1 for v in (width, levels)) or levels > MAX_LEVELS:
            return raw
        return {**raw, "code_length": width * 2**levels}

    def check(self) -> str | None:
        if self.channels < 1 or self.levels < 1 or self.blocks < 1:
            return "model.channels, model.levels and model.blocks must be at least 1"
        if self.levels > MAX_LEVELS or self.blocks > MAX_LAYERS:
            return (f"model.levels must be at most {MAX_LEVELS} and model.blocks at most {MAX_LAYERS}, got "
                    f"{self.levels} and {self.blocks}")
        if self.channels * 2**self.levels > MAX_WIDTH:
            return (f"model.channels x 2**levels, the widest level's channels, must be at most {MAX_WIDTH}, got "
                    f"{self.channels} x 2**{self.levels} = {self.channels * 2**self.levels}")
        if self.code_length != self.channels * 2**self.levels:
            return (f"model.code_length of unet is the code's channels, channels x 2**levels = "
                    f"{self.channels * 2**self.levels}; got {self.code_length}")
        return None


MAD_TO_SIGMA = 0.6745  # the median absolute value of a standard normal variable


def noise_level(x: torch.Tensor) -> torch.Tensor:
    """Each image's noise standard deviation (B, 1, 1, 1), estimated from the median absolute value of its
    finest diagonal Haar wavelet coefficients over all channels (Donoho's estimator): robust to the
    image's own content, which lives mostly at coarser scales."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    a, b = x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2]
    c, d = x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]
    diagonal = ((a - b - c + d) / 2).flatten(1).abs()  # orthonormal: white noise of std s gives std s
    median = diagonal.sort(1).values[:, (diagonal.shape[1] - 1) // 2]  # torch.median's, in ops ONNX has
    return (median / MAD_TO_SIGMA).view(-1, 1, 1, 1)


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(ch, ch, 3, padding=1), nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(F.relu(self.c1(x), inplace=True))


@register("unet", UNetConfig)
class UNetDenoiser(Autoencoder):
    """Residual U-Net (DRUNet-style) denoiser: additive skips, noise-predicting output, any image size."""

    decodes_codes = False  # the decoder also reads the encoder's features
    any_size = True
    channels_last = True  # NHWC convolutions: faster training steps on CPU (benchmarks/README.md#performance)
    # what trains it (benchmarks/README.md#denoising): a few hundred faces overfit within 20 epochs without
    # augmentation (shifts, rotations, zooms, gamma and contrast) and weight averaging
    train_defaults = {"batch_size": 16, "lr": 1e-3, "schedule": "cosine", "shift": 3, "rotate": 10.0, "zoom": 0.15,
                      "intensity": 0.3, "ema": 0.999}

    def __init__(self, config: UNetConfig):
        super().__init__(config)
        c = config
        widths = [c.channels * 2**i for i in range(c.levels + 1)]
        blocks = lambda w: nn.Sequential(*[ResBlock(w) for _ in range(c.blocks)])  # noqa: E731
        self.head = nn.Conv2d(c.in_channels + int(c.level_input), widths[0], 3, padding=1)
        self.enc = nn.ModuleList([blocks(widths[i]) for i in range(c.levels)])
        self.down = nn.ModuleList([nn.Conv2d(widths[i], widths[i + 1], 2, stride=2) for i in range(c.levels)])
        self.mid = blocks(widths[-1])
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(c.levels)])
        self.dec = nn.ModuleList([blocks(widths[i]) for i in range(c.levels)])
        self.tail = nn.Conv2d(widths[0], c.in_channels, 3, padding=1)
        self.factor = 2**c.levels

    def code_size(self, height: int, width: int) -> int:
        f = self.factor
        return self.config.code_length * -(-height // f) * -(-width // f)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, padding_to_multiple(x, self.factor), mode="replicate")

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The network's input: the image padded to a multiple of 2**levels (and with level_input, the
        noise level estimated on the unpadded image, as one more channel)."""
        xp = self._pad(x)
        if self.config.level_input:
            xp = torch.cat([xp, noise_level(x).expand(-1, 1, *xp.shape[-2:])], 1)
        return xp

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h, skips = self.head(x), []
        for enc, down in zip(self.enc, self.down):
            h = enc(h)
            skips.append(h)
            h = down(h)
        return self.mid(h), skips  # (B, 192, H/8, W/8)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(self._inputs(x))[0].flatten(1)

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None):
        target = x if target is None else target
        xin = self._inputs(x)
        xp = xin[:, : x.shape[1]]
        z, skips = self._features(xin)
        h = z
        for i in reversed(range(self.config.levels)):
            h = self.dec[i](self.up[i](h) + skips[i])
        y = self.tail(h)
        y = (xp + y) if self.config.residual else torch.sigmoid(y)
        y = F.pad(y, [-p for p in padding_to_multiple(x, self.factor)])  # crop back (a negative pad: export-friendly)
        recon = y if self.training else y.clamp(0.0, 1.0)  # training sees the unclipped sum
        rec = reconstruction_loss(recon, target, self.config.loss)
        return self.output(recon, z, rec, {"reconstruction": rec})
