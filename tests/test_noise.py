"""Every noise kind: the added noise's statistics, clipping, seeding, and the SPEC grammar."""

import numpy as np
import pytest
import torch

import aekit
from aekit.configs import HERE as CONFIGS  # the shipped configs (not the checkout's link, a file on Windows)
from aekit.noise import GRAMMAR, KINDS, NoiseConfig, load_sigma_map, make_corruption, parse_noise
from helpers import huge_header


def _apply(spec, x, seed=0):
    return make_corruption(parse_noise(spec))(x, torch.Generator().manual_seed(seed))


def test_homoscedastic_gaussian_statistics_and_clipping():
    x = torch.full((8, 1, 64, 64), 0.5)
    y = _apply("gaussian:0.1", x)
    d = (y - x).flatten()
    assert abs(float(d.mean())) < 0.003 and float(d.std()) == pytest.approx(0.1, rel=0.03)
    edge = _apply("gaussian:0.2", torch.zeros(4, 1, 32, 32))
    assert float(edge.min()) == 0.0 and float(edge.max()) <= 1.0
    assert float((edge == 0).float().mean()) == pytest.approx(0.5, abs=0.03)  # half the draws clipped


def test_heteroscedastic_gaussian_mixes_sigmas():
    x = torch.full((16, 1, 64, 64), 0.5)
    d = (_apply("gaussian:0.0-0.15", x) - x).flatten().double()  # max 3.3 sigma from the clip: ~no clipping
    # a U(0, 0.15) mix of Gaussians: variance E[s^2] = 0.15^2 / 3; heavier tails than one Gaussian (3)
    assert float(d.var()) == pytest.approx(0.0075, rel=0.03)
    kurtosis = float((d**4).mean() / d.var() ** 2)
    assert kurtosis > 4.5  # 3 E[s^4] / E[s^2]^2 = 5.4 for s ~ U(0, a)


def test_gaussian_map_uses_the_per_pixel_sigma(tmp_path):
    sigma = np.zeros((32, 32), np.float32)
    sigma[:, 16:] = 0.2
    path = tmp_path / "sigma.npy"
    np.save(path, sigma)
    x = torch.full((32, 1, 32, 32), 0.5)
    d = _apply(f"gaussian-map:{path}", x) - x
    assert float(d[..., :16].abs().max()) == 0.0
    assert float(d[..., 16:].std()) == pytest.approx(0.2, rel=0.05)
    with pytest.raises(aekit.ConfigError, match="does not match images"):
        _apply(f"gaussian-map:{path}", torch.full((2, 1, 64, 64), 0.5))


def test_mask_sets_that_fraction_of_pixels_to_zero_in_every_channel():
    x = torch.full((8, 3, 64, 64), 0.7)
    y = _apply("mask:0.3", x)
    zero = y == 0
    assert float(zero.float().mean()) == pytest.approx(0.3, abs=0.01)
    assert torch.equal(zero[:, 0], zero[:, 1]) and torch.equal(zero[:, 0], zero[:, 2])
    assert torch.equal(y[~zero], x[~zero])


def test_salt_and_pepper():
    x = torch.full((8, 1, 64, 64), 0.5)
    y = _apply("saltpepper:0.1", x)
    assert float((y == 0).float().mean()) == pytest.approx(0.05, abs=0.01)
    assert float((y == 1).float().mean()) == pytest.approx(0.05, abs=0.01)
    assert float(((y != 0) & (y != 1) & (y != 0.5)).float().sum()) == 0


@pytest.mark.parametrize("spec", ["gaussian:0.2", "gaussian:0.05-0.4", "mask:0.3", "saltpepper:0.1"])
def test_same_seed_same_noise(spec):
    x = torch.rand(4, 1, 16, 16)
    assert torch.equal(_apply(spec, x, seed=3), _apply(spec, x, seed=3))
    assert not torch.equal(_apply(spec, x, seed=3), _apply(spec, x, seed=4))


@pytest.mark.parametrize("spec", ["gaussian:0.2", "gaussian:0.05-0.4", "gaussian-map:s.npy", "mask:0.3",
                                  "saltpepper:0.1", "none", "gaussian:5e-05", "gaussian:1e-05-0.4",
                                  "gaussian-image:0-0.4"])
def test_spec_round_trip(spec):
    assert parse_noise(spec).spec() == spec


def test_numbers_are_read_as_python_writes_them():
    assert parse_noise("gaussian:5e-2").sigma == 0.05
    assert (parse_noise("gaussian:1e-3-2E-1").sigma, parse_noise("gaussian:1e-3-2E-1").sigma_max) == (0.001, 0.2)
    assert parse_noise(NoiseConfig(kind="gaussian", sigma=5e-5).spec()).sigma == 5e-5  # what spec() writes


@pytest.mark.parametrize("spec, why", [
    ("gauss:0.2", "unknown noise kind 'gauss' (did you mean 'gaussian'?)"),
    ("gaussian", "expected KIND:VALUE"),
    ("gaussian:abc", "is not a number"),
    ("gaussian:0.4-0.1", "MIN <= MAX"),
    ("mask:1.5", "must lie in [0, 1]"),
    ("gaussian:-0.1", "0 or more"),
    ("gaussian:0", "gaussian noise of sigma 0 adds nothing: give a sigma above 0 (e.g. gaussian:0.2), or none"),
    ("gaussian-image:0-0", "sigma 0 adds nothing: give a sigma above 0 (e.g. gaussian-image:0-0.4)"),
    ("mask:0", "mask noise of fraction 0 adds nothing"),
    # sigma in grey levels of 255 (BM3D's papers' unit): only noise would be left, a model trained on it silently
    ("gaussian:25", "noise sigma 25 is above 1: sigma is in units of the images' range [0, 1], where a std above 1 "
                    "leaves only noise; 25 of 255 levels is 0.098"),
    ("gaussian:0.05-30", "noise sigma 30 is above 1"),
    ("gaussian-image:0-50", "50 of 255 levels is 0.1961"),
])
def test_bad_spec_shows_the_grammar(spec, why):
    with pytest.raises(aekit.ConfigError) as e:
        parse_noise(spec)
    msg = str(e.value)
    assert why in msg and "grammar: none | gaussian:SIGMA" in msg and "\n" not in msg


def test_noise_table_in_config():
    cfg = aekit.load_config(CONFIGS / "reference-denoising.toml")
    ref = aekit.load_config(CONFIGS / "reference.toml")
    assert cfg.noise == NoiseConfig(kind="gaussian", sigma=0.2, where="native")  # added at 64x64, as the book
    # experiment B = experiment A + the noise
    assert (cfg.model, cfg.train, cfg.data, cfg.seed) == (ref.model, ref.train, ref.data, ref.seed)


def test_the_grammar_and_the_config_choices_come_from_the_table():
    assert GRAMMAR.split(" | ")[0] == "none" and all(name in GRAMMAR for name in KINDS)
    import typing

    assert typing.get_args(typing.get_type_hints(NoiseConfig)["kind"]) == tuple(KINDS)


def test_blind_gaussian_draws_one_sigma_per_image_within_the_range():
    x = torch.full((64, 1, 32, 32), 0.5)
    d = (_apply("gaussian-image:0.05-0.15", x) - x).flatten(1)  # 3.3 sigma from the clip at most: ~no clipping
    per_image = d.std(1)
    assert float(per_image.min()) > 0.04 and float(per_image.max()) < 0.16
    assert float(per_image.std()) > 0.02  # different images, different levels (U(0.05, 0.15): std 0.029)
    assert torch.equal(_apply("gaussian-image:0.05-0.15", x, seed=3), _apply("gaussian-image:0.05-0.15", x, seed=3))
    assert parse_noise("gaussian-image:0-0.4").spec() == "gaussian-image:0-0.4"


def test_a_noise_map_whose_header_declares_more_than_the_file_holds_is_refused_before_any_allocation(tmp_path):
    """A damaged header (a huge shape) was a MemoryError for 36 TiB."""
    with pytest.raises(aekit.ConfigError, match=r"noise map .*sigma.npy: not a readable .npy array \(damaged or "
                       r"truncated: its header declares a float32 array of shape \(10000000, 1000, 1000\)"):
        load_sigma_map(str(huge_header(tmp_path / "sigma.npy")))


@pytest.mark.parametrize("value, ok", [(1.0, True), (25.0, False), (-0.1, False), (np.nan, False)])
def test_a_noise_maps_sigmas_lie_in_the_images_range(tmp_path, value, ok):
    sigma = np.full((8, 8), 0.1, np.float32)
    sigma[3, 4] = value
    np.save(tmp_path / "s.npy", sigma)
    if ok:
        assert load_sigma_map(str(tmp_path / "s.npy")).max() == 1.0
    else:
        with pytest.raises(aekit.ConfigError, match=r"sigmas must be finite, 0 or more and at most 1 \(in units"):
            load_sigma_map(str(tmp_path / "s.npy"))


def test_a_noise_map_that_is_a_pipe_is_refused_not_waited_on(tmp_path):
    """A run folder (a tar archive) can hold a FIFO named map.npy: evaluate waited on it until killed."""
    import os

    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this system")
    os.mkfifo(tmp_path / "map.npy")
    with pytest.raises(aekit.ConfigError, match=r"noise map .*map.npy: not a readable .npy array \(not a file but a "
                                                r"pipe, a device or a folder\)"):
        load_sigma_map(str(tmp_path / "map.npy"))
