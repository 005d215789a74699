"""The reference deep convolutional autoencoder (docs/reference-experiments.md, experiment A), faithful to TensorFlow 1.

Default configuration, grayscale 32 x 32 input, code length 256 (8,579,841 parameters):

    encoder  conv 16 s2 -> conv 32 -> conv 64 -> conv 128   (3x3, 'same', ReLU)
             flatten -> dense 256, sigmoid                   (the code)
    decoder  reshape 16x16x1 -> tconv 128 s2 -> tconv 64 -> tconv 32 (ReLU) -> tconv 1 (sigmoid)

Widths, strides, activations, code length, input size and channels all come from the config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..typed import option
from .base import MAX_LAYERS, MAX_WIDTH, Autoencoder, ModelConfig, first_broken
from .layers import ACTIVATIONS, CodeToMap, DecoderInput, Linear, SameConv2d, SameConvTranspose2d, init_tf_defaults
from .registry import register

Activation = Literal["relu", "sigmoid", "tanh", "linear"]


@dataclass
class ConvAEConfig(ModelConfig):
    name: str = option("conv", "registered architecture")
    encoder_channels: tuple[int, ...] = option((16, 32, 64, 128), "conv filters, one per encoder layer (at most "
                                               f"{MAX_LAYERS} layers of {MAX_WIDTH})")
    encoder_strides: tuple[int, ...] = option((2, 1, 1, 1), "stride of each encoder conv")
    decoder_channels: tuple[int, ...] = option((128, 64, 32), "transposed-conv filters before the output layer "
                                               f"(at most {MAX_LAYERS} layers of {MAX_WIDTH})")
    decoder_strides: tuple[int, ...] = option((2, 1, 1), "stride of each of those (the output layer has stride 1)")
    kernel_size: int = option(3, f"every conv kernel is kernel_size x kernel_size (at most {MAX_LAYERS})")
    activation: Activation = option("relu", "hidden-layer activation")
    code_activation: Activation = option("sigmoid", "activation of the dense code layer")
    output_activation: Activation = option("sigmoid", "activation of the last layer")
    tf_padding: bool = option(True, "TensorFlow's asymmetric 'same' padding for stride 2 (false: PyTorch's symmetric)")
    init: Literal["tf", "torch"] = option("tf", "tf: Glorot-uniform kernels, zero biases; torch: PyTorch's defaults")
    decoder_input: DecoderInput = option("auto", "how the code becomes the decoder's first feature map: reshape "
                                         "(the reference's; code_length must be a multiple of its cells), dense "
                                         "(a linear layer to it), auto: reshape when the code fits, else dense",
                                         legacy="auto", since="2026-12-01T22:54")

    def check(self) -> str | None:
        """Why this configuration cannot build a model, or None."""
        return check_conv(self)


def check_conv(c) -> str | None:
    """The rules of an encoder/decoder of strided convolutions (conv and vae): strides divide the size,
    and a reshaped code fills the decoder's first feature map."""
    h, w = c.input_size
    for key in ("encoder_channels", "encoder_strides", "decoder_channels", "decoder_strides"):
        values = getattr(c, key)
        if problem := first_broken(
                (min(values, default=1) >= 1, f"model.{key} must all be at least 1, got {list(values)}"),
                (len(values) <= MAX_LAYERS, f"model.{key} must list at most {MAX_LAYERS} layers, got {len(values)}"),
                (max(values, default=1) <= MAX_WIDTH or "strides" in key,
                 f"model.{key} must all be at most {MAX_WIDTH}, got {max(values, default=1)}")):
            return problem
    if not 1 <= getattr(c, "kernel_size", 1) <= MAX_LAYERS:  # the vae's kernels are fixed
        return f"model.kernel_size must be between 1 and {MAX_LAYERS}, got {c.kernel_size}"
    if len(c.encoder_channels) != len(c.encoder_strides):
        return "model.encoder_channels and model.encoder_strides must have the same length"
    if len(c.decoder_channels) != len(c.decoder_strides):
        return "model.decoder_channels and model.decoder_strides must have the same length"
    down = math.prod(c.encoder_strides)
    if h % down or w % down:
        return f"model.input_size {h}x{w} is not divisible by the encoder's total stride {down}"
    up = math.prod(c.decoder_strides)
    if h % up or w % up:
        return f"model.input_size {h}x{w} is not divisible by the decoder's total stride {up}"
    cells = (h // up) * (w // up)
    if c.decoder_input == "reshape" and c.code_length % cells:
        return (
            f"model.code_length {c.code_length} does not fit the architecture: the decoder reshapes the code to "
            f"C x {h // up} x {w // up}, so it must be a multiple of {cells} (or set model.decoder_input to auto)"
        )
    return None


@register("conv", ConvAEConfig)
class ConvAutoencoder(Autoencoder):
    """Deep convolutional autoencoder with a dense code (the reference model)."""

    def __init__(self, config: ConvAEConfig):
        super().__init__(config)
        c = config
        h, w = c.input_size
        def act() -> nn.Module:  # in place after a convolution: one pass over the activations less
            return nn.ReLU(inplace=True) if c.activation == "relu" else ACTIVATIONS[c.activation]()

        layers: list[nn.Module] = []
        cin = c.in_channels
        for cout, s in zip(c.encoder_channels, c.encoder_strides):
            layers += [SameConv2d(cin, cout, c.kernel_size, s, c.tf_padding), act()]
            cin = cout
        self.encoder = nn.Sequential(*layers)  # (B, C, 32, 32) -> (B, 128, 16, 16)
        down = math.prod(c.encoder_strides)
        self.code = nn.Sequential(  # (B, 128*16*16) -> (B, 256)
            Linear(cin * (h // down) * (w // down), c.code_length),
            ACTIVATIONS[c.code_activation](),
        )

        self.to_map = CodeToMap(c.code_length, (h, w), c.decoder_strides, c.decoder_input)  # (B, 256) -> (B, 1, 16, 16)
        self.start_shape = self.to_map.shape
        layers = []
        cin = self.start_shape[0]
        for cout, s in zip(c.decoder_channels, c.decoder_strides):
            layers += [SameConvTranspose2d(cin, cout, c.kernel_size, s, c.tf_padding), act()]
            cin = cout
        layers += [
            SameConvTranspose2d(cin, c.in_channels, c.kernel_size, 1, c.tf_padding),
            ACTIVATIONS[c.output_activation](),
        ]
        self.decoder = nn.Sequential(*layers)  # (B, 1, 16, 16) -> (B, C, 32, 32)

        if c.init == "tf":
            init_tf_defaults(self)

    @torch.no_grad()
    def data_init(self, x: torch.Tensor, target: torch.Tensor | None = None) -> bool:
        """Rescale the dense code layer so that on ``x`` every unit's pre-activation has mean 0 and
        standard deviation 1 across the images.

        With the reference's Glorot init the pre-activations are dominated by what all faces share
        (the ReLU features are positive and alike), so the sigmoid code starts nearly the same for
        every face and the decoder first learns the mean face: the reference's plateau near loss 10
        for its first ~10 epochs, and the collapsed runs that never leave it. Calibrated, the code
        starts in the sigmoid's responsive range and differs from face to face.
        """
        if len(x) < 2:
            return False
        linear = self.code[0]
        z = linear(self.encoder(x).flatten(1))
        std = z.std(0).clamp_min(1e-6)
        linear.weight.div_(std[:, None])
        linear.bias.sub_(z.mean(0)).div_(std)
        return True

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)  # (B, 128, 16, 16)
        return self.code(h.flatten(1))  # (B, code_length)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.to_map(z))  # (B, 1, 16, 16) -> (B, C, 32, 32)
