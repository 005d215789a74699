"""Shared layers: TensorFlow-style 'same' convolutions and TF's default initialisation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def tf_same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'same' padding (before, after) for one spatial axis of a convolution."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Module):
    """3x3-style convolution with TensorFlow's 'same' padding.

    Stride 1 pads symmetrically; stride 2 on an even size pads 0 before and 1 after, as TF does
    (PyTorch's ``padding=1`` would shift the sampling grid by one pixel).
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, tf_padding: bool = True):
        super().__init__()
        self.kernel, self.stride, self.tf_padding = kernel, stride, tf_padding
        pad = 0 if tf_padding and stride > 1 else kernel // 2
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_padding and self.stride > 1:
            ph = tf_same_pad(x.shape[-2], self.kernel, self.stride)
            pw = tf_same_pad(x.shape[-1], self.kernel, self.stride)
            x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        return self.conv(x)


class SameConvTranspose2d(nn.Module):
    """Transposed convolution with TensorFlow's 'same' semantics: output = input x stride.

    TF computes the full transposed convolution and keeps rows/columns starting at
    ``pad_before = total // 2`` (0 for 3x3 stride 2, i.e. the first ``out`` rows); PyTorch's
    ``padding=1, output_padding=1`` would keep rows 1..out instead.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, tf_padding: bool = True):
        super().__init__()
        self.kernel, self.stride, self.tf_padding = kernel, stride, tf_padding
        if tf_padding and stride > 1:
            self.conv = nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=0)
        else:
            out_pad = stride - 1 if stride > 1 else 0
            self.conv = nn.ConvTranspose2d(
                cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=out_pad
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.tf_padding and self.stride > 1:
            h, w = x.shape[-2] * self.stride, x.shape[-1] * self.stride
            top = max((x.shape[-2] - 1) * self.stride + self.kernel - h, 0) // 2
            left = max((x.shape[-1] - 1) * self.stride + self.kernel - w, 0) // 2
            y = y[..., top : top + h, left : left + w]
        return y


def init_tf_defaults(module: nn.Module) -> None:
    """``tf.layers`` defaults: Glorot-uniform kernels and zero biases for conv and dense layers."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "linear": nn.Identity,
}
