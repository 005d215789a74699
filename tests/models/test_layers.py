"""The shared layers: TensorFlow's 'same' semantics against a direct implementation of TF's
definitions, the fast transposed convolutions against nn.ConvTranspose2d, and wide dense layers under bf16."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from aekit.models import layers
from aekit.models.layers import SameConv2d, SameConvTranspose2d, phase_conv_transpose2d


# --- TensorFlow 'same' semantics, against a direct implementation of TF's definitions -------------

def _tf_pad_before(n_in, n_out, k, s):
    return max((n_out - 1) * s + k - n_in, 0) // 2


def _tf_conv_same(x, w, b, s):
    """Naive TF conv2d, padding='same': out = ceil(in / s), pad_before = total // 2."""
    n = x.shape[0]
    k = w.shape[0]
    n_out = -(-n // s)
    p = _tf_pad_before(n, n_out, k, s)
    y = np.full((n_out, n_out), b)
    for i in range(n_out):
        for j in range(n_out):
            for a in range(k):
                for c in range(k):
                    r, q = i * s - p + a, j * s - p + c
                    if 0 <= r < n and 0 <= q < n:
                        y[i, j] += w[a, c] * x[r, q]
    return y


def _tf_conv_transpose_same(x, w, b, s):
    """Naive TF conv2d_transpose, padding='same': the adjoint of conv2d 'same', out = in * s."""
    n = x.shape[0]
    k = w.shape[0]
    n_out = n * s
    p = _tf_pad_before(n_out, n, k, s)
    y = np.full((n_out, n_out), b)
    for i in range(n):
        for j in range(n):
            for a in range(k):
                for c in range(k):
                    r, q = i * s - p + a, j * s - p + c
                    if 0 <= r < n_out and 0 <= q < n_out:
                        y[r, q] += w[a, c] * x[i, j]
    return y


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_matches_tensorflow_same_padding(stride):
    layer = SameConv2d(1, 1, 3, stride)
    torch.nn.init.normal_(layer.conv.weight)
    torch.nn.init.normal_(layer.conv.bias)
    x = torch.rand(1, 1, 8, 8)
    got = layer(x)[0, 0].detach().double().numpy()
    want = _tf_conv_same(x[0, 0].double().numpy(), layer.conv.weight[0, 0].detach().double().numpy(),
                         float(layer.conv.bias.detach()), stride)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
def test_transposed_conv_matches_tensorflow_same_padding(stride):
    layer = SameConvTranspose2d(1, 1, 3, stride)
    torch.nn.init.normal_(layer.conv.weight)
    torch.nn.init.normal_(layer.conv.bias)
    x = torch.rand(1, 1, 8, 8)
    got = layer(x)[0, 0].detach().double().numpy()
    # PyTorch's ConvTranspose2d weight is the conv kernel it transposes; TF's conv2d_transpose uses it
    # the same way (scatter of x[i] * w[a, c] to output row i*s - pad + a).
    want = _tf_conv_transpose_same(x[0, 0].double().numpy(), layer.conv.weight[0, 0].detach().double().numpy(),
                                   float(layer.conv.bias.detach()), stride)
    assert got.shape == (8 * stride, 8 * stride)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cin,cout,kernel,stride,tf_padding,size", [
    (1, 8, 3, 2, True, (8, 8)),      # the reference decoder's first layer
    (3, 5, 3, 2, False, (7, 6)),     # PyTorch padding, odd and non-square input
    (2, 4, 5, 2, True, (6, 6)),      # TF crops one row/column at the start for a 5x5 kernel
    (2, 3, 4, 3, True, (5, 4)),      # stride 3, kernel not a multiple of the stride
])
def test_subpixel_transposed_conv_equals_native(cin, cout, kernel, stride, tf_padding, size, monkeypatch):
    """The CPU fast path (one matrix product per output phase) computes exactly what
    nn.ConvTranspose2d computes, values and gradients, wherever the output is cropped."""
    calls = []
    real = layers.subpixel_conv_transpose2d
    monkeypatch.setattr(layers, "subpixel_conv_transpose2d", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    layer = SameConvTranspose2d(cin, cout, kernel, stride, tf_padding)
    torch.nn.init.normal_(layer.conv.bias)
    x = torch.rand(2, cin, *size, requires_grad=True)
    fast = layer(x)
    assert calls == [1]  # the fast path ran
    h, w = size[0] * stride, size[1] * stride
    full = layer.conv(x) if not tf_padding else torch.nn.functional.conv_transpose2d(
        x, layer.conv.weight, layer.conv.bias, stride)
    if tf_padding:
        top = max((size[0] - 1) * stride + kernel - h, 0) // 2
        left = max((size[1] - 1) * stride + kernel - w, 0) // 2
        full = full[..., top : top + h, left : left + w]
    assert fast.shape == full.shape == (2, cout, h, w)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(full)
    grads_fast = torch.autograd.grad(fast, [x, layer.conv.weight, layer.conv.bias], g)
    grads_native = torch.autograd.grad(full, [x, layer.conv.weight, layer.conv.bias], g)
    for a, b in zip(grads_fast, grads_native):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cin,cout,kernel,stride,tf_padding,size", [
    (1, 8, 3, 2, True, (8, 8)),
    (3, 5, 3, 2, False, (7, 6)),
    (2, 4, 5, 2, True, (6, 6)),
    (2, 3, 4, 3, True, (5, 4)),
    (24, 16, 3, 2, True, (9, 10)),
])
def test_phase_transposed_conv_equals_native(cin, cout, kernel, stride, tf_padding, size):
    """The bf16 CPU path (one convolution with a kernel per output phase, then pixel_shuffle) computes
    what nn.ConvTranspose2d computes, values and gradients (checked in float32, where both are exact)."""
    torch.manual_seed(0)
    layer = SameConvTranspose2d(cin, cout, kernel, stride, tf_padding)
    torch.nn.init.normal_(layer.conv.bias)
    x = torch.rand(2, cin, *size, requires_grad=True)
    h, w = size[0] * stride, size[1] * stride
    if tf_padding:
        top = max((size[0] - 1) * stride + kernel - h, 0) // 2
        left = max((size[1] - 1) * stride + kernel - w, 0) // 2
    else:
        top = left = layer.conv.padding[0]
    fast = phase_conv_transpose2d(x, layer.conv.weight, layer.conv.bias, stride, (top, left), (h, w))
    full = torch.nn.functional.conv_transpose2d(x, layer.conv.weight, layer.conv.bias, stride)
    full = full[..., top : top + h, left : left + w]
    assert fast.shape == full.shape == (2, cout, h, w)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(full)
    params = [x, layer.conv.weight, layer.conv.bias]
    for a, b in zip(torch.autograd.grad(fast, params, g), torch.autograd.grad(full, params, g)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_bf16_transposed_conv_takes_the_phase_path(monkeypatch):
    """Under bf16 autocast on the CPU a transposed convolution with many input channels runs as the
    phase convolution (faster there); in float32 it keeps PyTorch's kernel."""
    calls = []
    real = layers.phase_conv_transpose2d
    monkeypatch.setattr(layers, "phase_conv_transpose2d", lambda *a: calls.append(1) or real(*a))
    layer = SameConvTranspose2d(layers.SUBPIXEL_MAX_CHANNELS + 8, 4, 3, 2)
    x = torch.rand(2, layers.SUBPIXEL_MAX_CHANNELS + 8, 5, 5)
    ref = layer(x)
    assert not calls
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert calls and y.dtype == torch.bfloat16 and y.shape == ref.shape == (2, 4, 10, 10)
    torch.testing.assert_close(y.float(), ref, rtol=0.05, atol=0.05)


# --- wide dense layers under bf16 on the CPU ------------------------------------------------------

@pytest.mark.parametrize("features, bf16", [((layers.WIDE_DENSE, 8), False), ((8, layers.WIDE_DENSE), False),
                                            ((layers.WIDE_DENSE - 1, 8), True)])
def test_wide_dense_layers_compute_in_float32_under_cpu_bf16(features, bf16):
    """A dense layer with WIDE_DENSE or more input or output features computes in float32 under CPU bf16
    autocast (oneDNN's AMX kernel crashes on some such shapes), the same numbers as outside autocast;
    a narrower one keeps bf16."""
    torch.manual_seed(0)
    layer = layers.Linear(*features)
    x = torch.rand(3, features[0])
    ref = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == (torch.bfloat16 if bf16 else torch.float32)
    if bf16:
        torch.testing.assert_close(y.float(), ref, rtol=0.02, atol=0.02)
    else:
        torch.testing.assert_close(y, ref)
    y.float().sum().backward()
    assert layer.weight.grad.dtype == torch.float32 and layer.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_conv_trains_a_batch_of_12_at_64x64_under_bf16():
    """The shape that killed the process with SIGFPE on a CPU with AMX (torch 2.13): the reference
    encoder's dense layer, (12 x 131072) @ (131072 x 256), in a forward and backward pass under bf16
    autocast. In a child process, so a crash is a failure and not the end of the test run."""
    code = ("import torch, aekit\n"
            "m = aekit.create_model('conv', in_channels=3, input_size=(64, 64))\n"
            "with torch.autocast('cpu', dtype=torch.bfloat16):\n"
            "    out = m(torch.rand(12, 3, 64, 64))\n"
            "out.loss.backward()\n"
            "print(float(out.loss))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert np.isfinite(float(r.stdout.split()[-1]))
