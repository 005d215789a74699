"""Shared layers: TensorFlow-style 'same' convolutions and TF's default initialisation."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


DecoderInput = Literal["auto", "reshape", "dense"]


class CodeToMap(nn.Module):
    """A code (B, code_length) as the decoder's first feature map (B, C0, H/up, W/up).

    reshape: the reference's view (code_length must be C0 x the map's cells); dense: a linear layer to
    ``channels`` (at least ceil(code_length / cells)) channels, for any code length; auto: reshape when it
    fits, else dense.
    """

    def __init__(self, code_length: int, size: tuple[int, int], strides, mode: str = "auto", channels: int = 1):
        super().__init__()
        up = math.prod(strides)
        h, w = size[0] // up, size[1] // up
        cells = h * w
        dense = mode == "dense" or (mode == "auto" and code_length % cells != 0)
        self.shape = (max(channels, -(-code_length // cells)) if dense else code_length // cells, h, w)
        self.dense = Linear(code_length, math.prod(self.shape)) if dense else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.dense is not None:
            z = self.dense(z)
        return z.view(z.shape[0], *self.shape)


# oneDNN's bf16 matrix product on CPUs with AMX (torch 2.13's) dies with SIGFPE, killing the process, for
# some shapes with a long reduction and few rows: measured on an Intel Xeon with AMX, (M x K) @ (K x N) for
# M <= 32 and M * K = 1,572,864 (M = 12 at K = 128 x 32 x 32 = 131072, the reference encoder's dense layer
# at 64x64: a batch of 12 crashed the default `aekit train` on a folder of 16 images). Dense layers this
# wide run in float32 under bf16 on the CPU (tests/models/test_layers.py).
WIDE_DENSE = 16384


class Linear(nn.Linear):
    """``nn.Linear`` (the same parameters and state dict) that computes in float32 when it is wide (in or
    out features >= ``WIDE_DENSE``) and would otherwise run in bf16 on the CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if max(self.in_features, self.out_features) >= WIDE_DENSE and _bf16_on_cpu(x):
            with torch.autocast("cpu", enabled=False):
                bias = None if self.bias is None else self.bias.float()
                return F.linear(x.float(), self.weight.float(), bias)
        return super().forward(x)


def padding_to_multiple(x: torch.Tensor, factor: int) -> tuple[int, int, int, int]:
    """F.pad's (left, right, top, bottom) that bring ``x``'s sides up to multiples of ``factor`` (zeros when they
    are). Models of any size apply it always, with no branch on the size, and crop back with its negation, so an
    export with dynamic height and width holds for every size; the ceiling avoids a negative floor division,
    which ONNX truncates."""
    h, w = x.shape[-2], x.shape[-1]
    return (0, (w + factor - 1) // factor * factor - w, 0, (h + factor - 1) // factor * factor - h)


def tf_same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'same' padding (before, after) for one spatial axis of a convolution."""
    out = (size + stride - 1) // stride  # ceil in integers: a traced size stays an integer expression
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
        s = self.stride
        if s > 1:
            h, w = x.shape[-2] * s, x.shape[-1] * s
            if self.tf_padding:
                top = max((x.shape[-2] - 1) * s + self.kernel - h, 0) // 2
                left = max((x.shape[-1] - 1) * s + self.kernel - w, 0) // 2
            else:
                top = left = self.conv.padding[0]
            if x.device.type == "cpu" and x.shape[1] <= SUBPIXEL_MAX_CHANNELS:
                return subpixel_conv_transpose2d(x, self.conv.weight, self.conv.bias, s, (top, left), (h, w))
            if _bf16_on_cpu(x):
                return phase_conv_transpose2d(x, self.conv.weight, self.conv.bias, s, (top, left), (h, w))
            if self.tf_padding:
                return self.conv(x)[..., top : top + h, left : left + w]
        return self.conv(x)


# Below this many input channels a strided transposed convolution runs faster on the CPU as one
# matrix product per output phase (measured, one thread: 1 -> 128 channels at 16x16, batch 50:
# 98 ms forward + backward natively, 33 ms this way; 128 -> 64: 29 ms natively, 56 ms this way).
SUBPIXEL_MAX_CHANNELS = 16


def _phase_plan(weight: torch.Tensor, stride: int, offset: tuple[int, int], size: tuple[int, int]):
    """What both phase-wise forms of a strided transposed convolution need: J = ceil(kernel / s); the
    first input row and column (after padding by J - 1) whose phases are kept and how many; the crop
    (dy, dx) of the interleaved phases; and the kernel as (C_in, C_out, J, s, J, s) slices, flipped so
    that tap t = p + s*q' (q' = J - 1 - q, counted from the newest input pixel) sits at [..., q, p, ...]."""
    cin, cout, k, _ = weight.shape
    s, j = stride, -(-k // stride)
    (oy, ox), (h, w) = offset, size
    m0, n0 = oy // s, ox // s
    rows, cols = (oy + h - 1) // s - m0 + 1, (ox + w - 1) // s - n0 + 1
    wp = F.pad(weight, (0, s * j - k, 0, s * j - k)).view(cin, cout, j, s, j, s).flip(2, 4)
    return j, (m0, n0, rows, cols), (oy - s * m0, ox - s * n0), wp


def subpixel_conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int,
                              offset: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """``conv_transpose2d(x, weight, bias, stride)`` (no padding) cropped to ``size`` from ``offset``.

    Computed as sub-pixel convolution: output pixel (s*m + p) depends only on input pixels
    m - J + 1 .. m (J = ceil(kernel / s)) through the kernel taps p, p + s, ..., so every output
    phase (p_y, p_x) is an ordinary correlation with a J x J slice of the flipped kernel. All
    s*s phases are one matrix product of the (B*H*W, C_in*J*J) input patches with a
    (C_in*J*J, s*s*C_out) matrix, and interleaving the phases gives the output directly in
    channels-last order (returned as a channels-last NCHW tensor).
    """
    b, cin, _, _ = x.shape
    cout, s, (h, w) = weight.shape[1], stride, size
    j, (m0, n0, rows, cols), (dy, dx), wp = _phase_plan(weight, stride, offset, size)
    xp = F.pad(x, (j - 1, j - 1, j - 1, j - 1))
    patches = torch.stack(
        [xp[:, :, m0 + qy : m0 + qy + rows, n0 + qx : n0 + qx + cols] for qy in range(j) for qx in range(j)], -1
    )  # (B, C_in, rows, cols, J*J)
    patches = patches.permute(0, 2, 3, 1, 4).reshape(b * rows * cols, cin * j * j)
    wm = wp.permute(0, 2, 4, 3, 5, 1).reshape(cin * j * j, s * s * cout)  # (ci, qy, qx) x (py, px, co)
    y = patches @ wm if bias is None else torch.addmm(bias.repeat(s * s), patches, wm)
    y = y.view(b, rows, cols, s, s, cout).permute(0, 1, 3, 2, 4, 5).reshape(b, rows * s, cols * s, cout)
    if dy or dx or rows * s != h or cols * s != w:
        y = y[:, dy : dy + h, dx : dx + w, :]
    return y.permute(0, 3, 1, 2)


def _bf16_on_cpu(x: torch.Tensor) -> bool:
    """Whether an operation on ``x`` runs in bfloat16 on the CPU (a bf16 CPU tensor, or under CPU bf16 autocast)."""
    if x.device.type != "cpu":
        return False
    if x.dtype == torch.bfloat16:
        return True
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    return torch.is_autocast_cpu_enabled() and torch.get_autocast_cpu_dtype() == torch.bfloat16




def phase_conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int,
                           offset: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """The same result as ``subpixel_conv_transpose2d``, computed as one ordinary convolution with
    ``s*s*C_out`` output channels (a J x J kernel per output phase) followed by ``pixel_shuffle``.

    More multiply-adds than the transposed kernel (J*J*s*s = 16 against 9 taps for 3x3, stride 2), but
    it runs on oneDNN's direct convolution, which in bfloat16 is much faster on the CPU than
    PyTorch's transposed one (benchmarks/transposed_conv.py, fwd + bwd, batch 16: 64 -> 32 channels
    at 32x32 1.83x, 128 -> 64 at 16x16 1.48x; in float32 it is slower, so it is used for bf16 only)."""
    cin, cout = weight.shape[:2]
    s, (h, w) = stride, size
    j, (m0, n0, rows, cols), (dy, dx), wp = _phase_plan(weight, stride, offset, size)
    xp = F.pad(x, (j - 1, j - 1, j - 1, j - 1))[:, :, m0 : m0 + rows + j - 1, n0 : n0 + cols + j - 1]
    w2 = wp.permute(1, 3, 5, 0, 2, 4).reshape(cout * s * s, cin, j, j)  # (co, py, px) x ci x qy x qx
    y = F.pixel_shuffle(F.conv2d(xp, w2, None if bias is None else bias.repeat_interleave(s * s)), s)
    if dy or dx or rows * s != h or cols * s != w:
        y = y[..., dy : dy + h, dx : dx + w]
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
