"""The residual U-Net denoiser: any image size, a noise-predicting output, the images' own working size."""

import numpy as np
import pytest
import torch

import aekit
from aekit.config import replace
from aekit.models import create_model


def test_any_size_in_and_out_and_the_output_is_the_input_plus_a_correction():
    model = create_model("unet", channels=4, levels=2, blocks=1, code_length=16).eval()
    for h, w in ((20, 28), (33, 17), (8, 8)):  # not multiples of 2**levels: padded and cropped back
        x = torch.rand(2, 1, h, w)
        assert model(x).recon.shape == x.shape
    torch.nn.init.zeros_(model.tail.weight), torch.nn.init.zeros_(model.tail.bias)
    x = torch.rand(2, 1, 16, 16)
    assert torch.allclose(model(x).recon, x)  # a zero correction: the noisy input itself


def test_without_a_size_a_unet_run_works_at_the_images_own_size(tmp_path):
    g = np.random.default_rng(0)
    np.save(tmp_path / "images.npy", g.random((24, 20, 28)).astype(np.float32))
    cfg = replace(aekit.Config(), **{"data.source": str(tmp_path / "images.npy"), "model.name": "unet",
                                     "model.channels": 4, "model.levels": 2, "model.blocks": 1,
                                     "model.code_length": 16, "train.epochs": 1, "train.device": "cpu",
                                     "train.compare": False, "noise.kind": "gaussian", "noise.sigma": 0.1})
    lines = []
    result = aekit.train(cfg, out=tmp_path / "run", progress=False, log=lines.append)
    assert tuple(result.model.config.input_size) == (20, 28)
    assert any(line.startswith("Working size: 20x28") for line in lines)


def test_the_noise_level_estimate_follows_the_noise_and_ignores_smooth_content():
    from aekit.models.unet import noise_level

    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    smooth = (0.3 + 0.4 * torch.sin(3 * xx) * yy)[None, None].expand(8, 1, 64, 64)
    assert float(noise_level(smooth).max()) < 0.005
    g = torch.Generator().manual_seed(0)
    for sigma in (0.02, 0.1, 0.3):
        est = noise_level(smooth + sigma * torch.randn(smooth.shape, generator=g)).flatten()
        assert torch.allclose(est, torch.full_like(est, sigma), rtol=0.15)


def test_level_input_is_one_more_input_channel_and_padding_repeats_the_edges():
    model = create_model("unet", channels=4, levels=2, blocks=1, code_length=16, level_input=True).eval()
    assert model.head.in_channels == 2
    x = torch.rand(3, 1, 10, 13)
    assert model(x).recon.shape == x.shape
    inputs = model._inputs(x)
    assert inputs.shape == (3, 2, 12, 16)
    assert torch.equal(inputs[:, :1, :10, :13], x) and torch.equal(inputs[:, :1, 11, :13], x[:, :, 9])
    assert torch.equal(inputs[:, 1:], inputs[:, 1:, :1, :1].expand(-1, -1, 12, 16))  # a constant map per image


def test_the_code_length_follows_channels_and_levels_unless_given(tmp_path):
    from aekit.config_file import load_config

    (tmp_path / "small.toml").write_text("[model]\nname = 'unet'\nchannels = 8\nlevels = 2\n")
    assert load_config(tmp_path / "small.toml").model.code_length == 32  # 8 x 2**2, not the default's 192
    assert aekit.create_model("unet", levels=4).config.code_length == 384
    with pytest.raises(aekit.ConfigError, match=r"channels x 2\*\*levels = 32; got 100"):
        aekit.create_model("unet", channels=8, levels=2, code_length=100)  # given: checked, not replaced
