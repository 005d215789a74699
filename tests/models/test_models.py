"""Every registered model gets shape, loss, gradient, optimisation and save/load checks; the
reference model is checked against TensorFlow's layer shapes, parameter count and padding rules."""

import re

import numpy as np
import pytest
import torch

import aekit
from aekit.models import create_model, list_models
from aekit.models.layers import SameConv2d, SameConvTranspose2d
from aekit.models.losses import batch_loss, reconstruction_loss

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
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(aekit.AekitError, match="file: is a file; save writes a folder"):
        aekit.save(model, tmp_path / "file")


@pytest.mark.parametrize("settings, message", [
    ({"code_length": -3}, "model.code_length must be at least 1, got -3"),
    ({"in_channels": 0}, "model.in_channels must be 1 or 3, got 0"),
    ({"input_size": (0, 0)}, "model.input_size must be positive, got (0, 0)"),
])
@pytest.mark.parametrize("name", ["conv", "hybrid"])
def test_create_model_refuses_what_config_validation_refuses(name, settings, message):
    with pytest.raises(aekit.ConfigError, match=re.escape(message)):
        create_model(name, **settings)
    assert create_model(name, code_length=np.int64(8)).config.code_length == 8  # NumPy integers are integers


@pytest.mark.parametrize("name, settings, message", [
    ("conv", {"kernel_size": 0}, "model.kernel_size must be between 1 and 64, got 0"),
    ("conv", {"encoder_channels": (0, 32, 64, 128)}, "model.encoder_channels must all be at least 1, got [0, 32, 64, 128]"),
    ("conv", {"decoder_strides": (2, 0, 1)}, "model.decoder_strides must all be at least 1, got [2, 0, 1]"),
    ("vae", {"encoder_strides": (2, -1, 2)}, "model.encoder_strides must all be at least 1, got [2, -1, 2]"),
    ("vae", {"kl_warmup": -5}, "model.kl_warmup must be 0 or more (training steps; 0: off), got -5"),
    ("vae", {"start_channels": 0}, "model.start_channels must be between 1 and 65536, got 0"),
])
def test_impossible_layers_are_refused_before_torch_sees_them(name, settings, message):
    with pytest.raises(aekit.ConfigError, match=re.escape(message)):
        create_model(name, **settings)


@pytest.mark.parametrize("name, settings, message", [
    ("unet", {"blocks": 100000}, "model.levels must be at most 16 and model.blocks at most 64, got 3 and 100000"),
    ("unet", {"levels": 40}, "model.levels must be at most 16 and model.blocks at most 64, got 40 and 2"),
    ("unet", {"channels": 10**6}, "model.channels x 2**levels, the widest level's channels, must be at most 65536, "
                                  "got 1000000 x 2**3 = 8000000"),
    ("hybrid", {"refine_layers": 10**6}, "model.hidden and model.refine_channels must be at most 65536 and "
                                         "model.refine_layers at most 64, got 0, 32 and 1000000"),
    ("hybrid", {"hidden": 10**7}, "must be at most 65536 and model.refine_layers at most 64, got 10000000, 32 and 5"),
    ("conv", {"encoder_channels": (16, 32, 64, 10**6)}, "model.encoder_channels must all be at most 65536, got 1000000"),
    ("conv", {"encoder_channels": (8,) * 65, "encoder_strides": (1,) * 65},
     "model.encoder_channels must list at most 64 layers, got 65"),
    ("conv", {"kernel_size": 1001}, "model.kernel_size must be between 1 and 64, got 1001"),
    ("vae", {"decoder_channels": (128, 10**7, 32)}, "model.decoder_channels must all be at most 65536, got 10000000"),
    ("fcn", {"channels": (32,) * 20}, "model.channels must list at most 16 widths (each halves the size), got 20"),
    ("fcn", {"code_length": 10**6}, "model.code_length of fcn is the code's channels: at most 65536, got 1000000"),
    ("conv", {"code_length": 10**9}, "model.code_length must be at most 16777216, got 1000000000"),
    ("conv", {"input_size": (100000, 100000)}, "model.input_size must be at most 65536 a side, got (100000, 100000)"),
])
def test_structural_counts_have_upper_bounds_checked_before_any_layer_is_built(monkeypatch, name, settings, message):
    """A model.json of 1 KB with unet blocks = 100000 (or hybrid refine_layers = 10**6) built for a minute and ended in
    std::bad_alloc or an empty MemoryError; a channel of 10**6 filled memory before the weights were compared."""
    from aekit.models import registry

    def never(config):
        raise AssertionError("a layer was built")

    monkeypatch.setattr(registry, "model_class", lambda name: never)
    with pytest.raises(aekit.ConfigError, match=re.escape(message)):
        create_model(name, **settings)


def test_a_model_too_large_for_memory_is_a_config_error_naming_the_code_length(monkeypatch):
    from aekit.models import registry

    def too_large(config):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 32768000000 bytes.")

    monkeypatch.setattr(registry, "model_class", lambda name: too_large)
    with pytest.raises(aekit.ConfigError, match=r"^model.code_length 1000000: the conv model's weights do not fit"):
        create_model("conv", code_length=10**6)


@pytest.mark.parametrize("failure", [RuntimeError("std::bad_alloc"), MemoryError(),
                                     RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: not enough memory")])
def test_an_allocation_failure_names_the_setting_that_makes_the_model_large(monkeypatch, failure):
    """std::bad_alloc and MemoryError came through raw; the message always blamed model.code_length."""
    from aekit.models import registry

    def fails(config):
        raise failure

    monkeypatch.setattr(registry, "model_class", lambda name: fails)
    with pytest.raises(aekit.ConfigError) as e:
        create_model("unet", blocks=60)
    assert str(e.value).startswith("model.blocks 60: the unet model's weights do not fit in memory")
    assert e.value.keys == ("model.blocks",)


def test_weights_larger_than_the_memory_available_are_refused_before_they_are_allocated(monkeypatch):
    """Counted on the meta device: nothing was checked before the allocator took all it could."""
    from aekit import memory

    monkeypatch.setattr(memory, "available", lambda: 2**20)
    with pytest.raises(aekit.ConfigError) as e:
        create_model("conv", encoder_channels=(16, 32, 64, 256))
    assert str(e.value) == ("model.encoder_channels [16, 32, 64, 256]: the conv model's weights do not fit in memory "
                            "with these settings (65.0 MiB, more than the 1.0 MiB of memory available); lower it (or "
                            "the layers' widths)")
    assert e.value.keys == ("model.encoder_channels",)


def test_unknown_model_lists_known():
    with pytest.raises(aekit.ConfigError, match="unknown model 'nope'.*known: .*conv"):
        create_model("nope")
    with pytest.raises(aekit.ConfigError, match=r"unknown model 'vea' \(did you mean 'vae'\?\)"):
        create_model("vea")


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


def test_rgb_and_wider_variants_build():
    model = create_model("conv", in_channels=3, input_size=(64, 64), code_length=1024,
                         encoder_channels=(8, 16), encoder_strides=(2, 2), decoder_channels=(16, 8),
                         decoder_strides=(2, 2))
    out = model(torch.rand(2, 3, 64, 64))
    assert out.recon.shape == (2, 3, 64, 64) and out.code.shape == (2, 1024)


@pytest.mark.parametrize("name", MODELS)
def test_the_model_contract_has_its_defaults(name):
    """What the trainer and tools read is declared on the base class: every model answers it."""
    model = create_model(name)
    assert isinstance(model.decodes_codes, bool) and isinstance(model.needs_data_init, bool)
    assert model.prior in (None, "normal") and model.data_init_images >= 1 and model.preprocess == {}
    groups = model.param_groups(1e-3)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert model.loss_is_sum == (model.config.loss in ("l2", "bce"))


@pytest.mark.parametrize("name", MODELS)
def test_the_weight_layout_changes_speed_not_results(name, tiny_images, tmp_path):
    """Models that declare channels_last get NHWC convolution weights, kept through a save and load;
    the same weights in the default layout give the same outputs and gradients (to float rounding)."""
    model = create_model(name).eval()
    layout = torch.channels_last if model.channels_last else torch.contiguous_format
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=layout) for p in convs)
    aekit.save(model, tmp_path / "m")
    assert all(p.is_contiguous(memory_format=layout) for p in aekit.load(tmp_path / "m").parameters() if p.dim() == 4)
    other = create_model(name).eval()
    other.load_state_dict(model.state_dict())
    other.to(memory_format=torch.contiguous_format if model.channels_last else torch.channels_last)
    x = tiny_images[:4]
    a, b = model(x), other(x)
    torch.testing.assert_close(a.recon, b.recon, rtol=1e-4, atol=1e-5)
    a.loss.backward()
    b.loss.backward()
    for p, q in zip(model.parameters(), other.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("size, code", [((32, 32), 64), ((64, 64), 64), ((64, 48), 100), ((32, 32), 300)])
def test_the_conv_model_takes_any_code_length_through_a_dense_layer(size, code):
    model = create_model("conv", input_size=size, code_length=code, encoder_channels=(4, 4), encoder_strides=(2, 1),
                         decoder_channels=(4,), decoder_strides=(2,))
    assert model.to_map.dense is not None  # the code does not fill the decoder's first map: projected
    out = model(torch.rand(2, 1, *size))
    assert out.code.shape == (2, code) and out.recon.shape == (2, 1, *size)
    out.loss.backward()


def test_the_reference_keeps_its_exact_reshape_and_a_forced_reshape_says_what_fits():
    assert create_model("conv").to_map.dense is None  # 256 = 1 x 16 x 16: the reference's reshape
    with pytest.raises(aekit.ConfigError, match=r"code_length 100 does not fit .* multiple of 256 .*decoder_input"):
        create_model("conv", code_length=100, decoder_input="reshape")


def test_the_setting_blamed_for_large_weights_is_one_they_depend_on():
    """A unet's weights do not depend on its input size, nor any model's on the images' channels: "lower it" named
    them where a width made the weights large."""
    from aekit.models.registry import _large_key, build_model_config

    unet = build_model_config({"name": "unet", "input_size": [1024, 1024], "in_channels": 3, "channels": 48})
    assert _large_key(unet)[0] in ("model.channels", "model.code_length")  # (the code's channels follow its width)
    conv = build_model_config({"name": "conv", "input_size": [1024, 1024], "in_channels": 3})
    assert _large_key(conv) == ("model.input_size", [1024, 1024])  # a dense layer's weights grow with it
