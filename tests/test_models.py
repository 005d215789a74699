"""Every registered model gets shape, loss, gradient, optimisation and save/load checks; the
reference model is checked against TensorFlow's layer shapes, parameter count and padding rules."""

import numpy as np
import pytest
import torch

import aekit
from aekit.models import create_model, list_models
from aekit.models.base import batch_loss, reconstruction_loss
from aekit.models.layers import SameConv2d, SameConvTranspose2d

MODELS = list_models()


@pytest.mark.parametrize("name", MODELS)
def test_forward_shapes_and_finite_loss(name, tiny_images):
    model = create_model(name).eval()
    x = tiny_images[:4]
    with torch.no_grad():
        out = model(x)
    assert out.recon.shape == x.shape
    assert out.code.shape == (4, model.code_size(32, 32))
    assert out.per_sample.shape == (4,)
    assert torch.isfinite(out.loss)
    assert 0 <= float(out.recon.min()) and float(out.recon.max()) <= 1


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name, tiny_images):
    model = create_model(name)
    model(tiny_images[:4]).loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", MODELS)
def test_a_few_steps_lower_the_loss(name, tiny_images):
    model = create_model(name)
    if model.prior is not None:
        # a VAE samples its code in training: 30 noisy steps only learn the mean image, so check the
        # optimisation on the deterministic path (z = mu); test_vae.py covers the sampling
        model.eval()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = tiny_images[:8]
    loss = model.config.loss
    floor = float(batch_loss(reconstruction_loss(x, x, loss), loss))  # a perfect reconstruction (bce: > 0)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        out = model(x)
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()) - floor)
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip(name, tiny_images, tmp_path):
    model = create_model(name).eval()
    aekit.save(model, tmp_path / "m", preprocess={"size": [32, 32]})
    loaded = aekit.load(tmp_path / "m")
    x = tiny_images[:4]
    with torch.no_grad():
        assert torch.equal(model(x).recon, loaded(x).recon)
        assert torch.equal(model(x).code, loaded(x).code)
    assert loaded.config == model.config
    assert loaded.preprocess == {"size": [32, 32]}


def test_unknown_model_lists_known():
    with pytest.raises(aekit.ConfigError, match="unknown model 'nope'.*known: .*conv"):
        create_model("nope")


def test_reference_parameter_count():
    """8,579,841 trainable parameters: the TensorFlow model's count."""
    model = create_model("conv")
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 8_579_841


def test_reference_layer_shapes():
    model = create_model("conv")
    shapes = []
    for layer in list(model.encoder) + list(model.code) + list(model.decoder):
        if isinstance(layer, (SameConv2d, SameConvTranspose2d, torch.nn.Linear)):
            layer.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    model(torch.rand(2, 1, 32, 32))
    assert shapes == [
        (16, 16, 16),  # conv 16, stride 2
        (32, 16, 16),
        (64, 16, 16),
        (128, 16, 16),
        (256,),  # dense code
        (128, 32, 32),  # transposed conv 128, stride 2 (from the 16x16x1 reshape)
        (64, 32, 32),
        (32, 32, 32),
        (1, 32, 32),
    ]


def test_reference_init_is_glorot_uniform_with_zero_biases():
    model = create_model("conv")
    dense = model.code[0]
    limit = np.sqrt(6 / (dense.in_features + dense.out_features))
    assert float(dense.weight.detach().abs().max()) <= limit
    assert float(dense.weight.detach().abs().max()) > 0.95 * limit
    for m in model.modules():
        if hasattr(m, "bias") and isinstance(m.bias, torch.Tensor):
            assert torch.all(m.bias == 0)


def test_code_length_that_does_not_fit_is_an_error():
    with pytest.raises(aekit.ConfigError, match="code_length 100 does not fit"):
        create_model("conv", code_length=100)


def test_rgb_and_wider_variants_build():
    model = create_model("conv", in_channels=3, input_size=(64, 64), code_length=1024,
                         encoder_channels=(8, 16), encoder_strides=(2, 2), decoder_channels=(16, 8),
                         decoder_strides=(2, 2))
    out = model(torch.rand(2, 3, 64, 64))
    assert out.recon.shape == (2, 3, 64, 64) and out.code.shape == (2, 1024)


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
def test_subpixel_transposed_conv_equals_native(cin, cout, kernel, stride, tf_padding, size):
    """The CPU fast path (one matrix product per output phase) computes exactly what
    nn.ConvTranspose2d computes, values and gradients, wherever the output is cropped."""
    from aekit.models import layers

    torch.manual_seed(0)
    layer = SameConvTranspose2d(cin, cout, kernel, stride, tf_padding)
    torch.nn.init.normal_(layer.conv.bias)
    x = torch.rand(2, cin, *size, requires_grad=True)
    fast = layer(x)
    assert layers.SUBPIXEL_MAX_CHANNELS >= cin  # the fast path ran
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
    from aekit.models.layers import phase_conv_transpose2d

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
    from aekit.models import layers

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
