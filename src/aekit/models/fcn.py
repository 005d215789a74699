"""A fully convolutional encoder-decoder (U-Net style): no dense layer, so it works at any size.

For denoising real images: trained on small crops or faces, it denoises images of any size
(``aekit denoise`` runs it on whole images, in overlapping tiles when they are large).
Default configuration (grayscale, two down-samplings, 32/64 channels, code of 64 channels):

    enc0  conv 32 -> conv 32                         (B, 32, H, W)
    enc1  conv 64 s2 -> conv 64                      (B, 64, H/2, W/2)
    code  conv 64 s2 -> conv 64                      (B, 64, H/4, W/4)   the code (flattened)
    dec1  tconv 64 s2, concat enc1 -> conv 64        (B, 64, H/2, W/2)
    dec0  tconv 32 s2, concat enc0 -> conv 32        (B, 32, H, W)
    out   concat input -> conv C, sigmoid            (B, C, H, W)
          (residual = true: input + conv C, clipped to [0, 1] in eval mode)

Inputs whose sides are not multiples of 4 are padded by reflection (by repeating the edge under 4 pixels)
and cropped back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..typed import option
from .base import MAX_WIDTH, Autoencoder, ModelConfig, first_broken
from .layers import SameConv2d, SameConvTranspose2d, init_tf_defaults, padding_to_multiple
from .losses import reconstruction_loss
from .registry import register


MAX_LEVELS = 16  # down-samplings: 2**16 is the largest side (data.MAX_SIDE)


@dataclass
class FCNConfig(ModelConfig):
    name: str = option("fcn", "registered architecture")
    code_length: int = option(64, "channels of the code feature map (at 1/2**len(channels) of the input "
                              f"size: 1/4 by default; at most {MAX_WIDTH})")
    channels: tuple[int, ...] = option((32, 64), "channels at full and at half resolution (at most "
                                       f"{MAX_LEVELS} levels of {MAX_WIDTH})")
    skips: bool = option(True, "U-Net skip connections (false: a plain convolutional autoencoder)")
    residual: bool = option(False, "predict a correction added to the input (clipped to [0, 1] in eval mode)")

    def check(self) -> str | None:
        if len(self.channels) < 1 or min(self.channels) < 1:
            return "model.channels must list at least one positive width"
        return first_broken(
            (len(self.channels) <= MAX_LEVELS, f"model.channels must list at most {MAX_LEVELS} widths (each halves "
                                               f"the size), got {len(self.channels)}"),
            (max(self.channels) <= MAX_WIDTH, f"model.channels must all be at most {MAX_WIDTH}, got {max(self.channels)}"),
            (self.code_length <= MAX_WIDTH, f"model.code_length of fcn is the code's channels: at most {MAX_WIDTH}, "
                                            f"got {self.code_length}"))


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        SameConv2d(cin, cout, 3, stride), nn.ReLU(), SameConv2d(cout, cout, 3), nn.ReLU()
    )


@register("fcn", FCNConfig)
class FCNAutoencoder(Autoencoder):
    """Fully convolutional U-Net-style autoencoder for denoising images of any size."""

    decodes_codes = False  # the decoder also reads the encoder's skip connections
    any_size = True  # fully convolutional: trains and runs at the images' own size unless data.size says otherwise
    channels_last = True  # NHWC convolutions: faster training steps on CPU (benchmarks/README.md#performance)

    def __init__(self, config: FCNConfig):
        super().__init__(config)
        c = config
        widths = list(c.channels)
        self.down = nn.ModuleList()
        cin = c.in_channels
        for i, w in enumerate(widths):
            self.down.append(_block(cin, w, stride=1 if i == 0 else 2))
            cin = w
        self.bottleneck = _block(cin, c.code_length, stride=2)
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        cin = c.code_length
        for w in reversed(widths):
            self.up.append(nn.Sequential(SameConvTranspose2d(cin, w, 3, 2), nn.ReLU()))
            self.merge.append(nn.Sequential(SameConv2d(w * (2 if c.skips else 1), w, 3), nn.ReLU()))
            cin = w
        self.head = SameConv2d(cin + c.in_channels, c.in_channels, 3)
        self.factor = 2 ** len(widths)
        init_tf_defaults(self)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        h = x
        for block in self.down:
            h = block(h)
            skips.append(h)
        return self.bottleneck(h), skips

    def _decode(self, z: torch.Tensor, skips: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = z
        for i, (up, merge) in enumerate(zip(self.up, self.merge)):
            h = up(h)
            if self.config.skips:
                h = torch.cat([h, skips[-1 - i]], 1)
            h = merge(h)
        y = self.head(torch.cat([h, x], 1))
        if not self.config.residual:
            return torch.sigmoid(y)
        y = x + y
        # training sees the unclipped sum, so gradients reach pixels pushed past 0 or 1; outputs are clipped
        return y if self.training else y.clamp(0.0, 1.0)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        # reflection needs each pad (at most factor - 1) shorter than the side: images under factor pixels repeat
        mode = "reflect" if min(x.shape[-2:]) >= self.factor else "replicate"
        return F.pad(x, padding_to_multiple(x, self.factor), mode=mode)

    def code_size(self, height: int, width: int) -> int:
        """The code is the bottleneck feature map: code_length channels at 1/factor of the (padded) size."""
        f = self.factor
        return self.config.code_length * -(-height // f) * -(-width // f)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z, _ = self._features(self._pad(x))
        return z.flatten(1)  # (B, code_length * H/factor * W/factor)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            "the fcn model decodes with its encoder's skip connections; use model(x) for reconstructions"
        )

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None):
        target = x if target is None else target
        xp = self._pad(x)
        z, skips = self._features(xp)
        crop = [-p for p in padding_to_multiple(x, self.factor)]  # a negative pad: export keeps it dynamic
        recon = F.pad(self._decode(z, skips, xp), crop)
        rec = reconstruction_loss(recon, target, self.config.loss)
        return self.output(recon, z, rec, {"reconstruction": rec})
