"""The baselines' numerics against references: the PCA Wiener filter against the dense formula with
scikit-learn's Ledoit-Wolf covariance."""

import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf, ledoit_wolf_shrinkage

from aekit.baselines import BASELINES, CLASSICAL, Setup, _ledoit_wolf, applicable, rivals


def _faces(n=30, c=1, h=6, w=5, seed=0):
    """Images with structure (a few shared patterns), so the covariance is not the identity."""
    patterns = np.random.default_rng(0).random((4, c * h * w))  # the same "faces" in every call
    rng = np.random.default_rng(seed)
    x = 0.2 + 0.6 * rng.dirichlet(np.ones(4), n) @ patterns + 0.02 * rng.standard_normal((n, c * h * w))
    return np.clip(x, 0, 1).reshape(n, c, h, w)


@pytest.mark.parametrize("n,c", [(30, 1), (12, 3), (200, 1)])
def test_ledoit_wolf_from_the_gram_matrix_is_scikit_learns(n, c):
    x = _faces(n, c).reshape(n, -1)
    xc = x - x.mean(0)
    assert _ledoit_wolf(xc @ xc.T, x.shape[1]) == pytest.approx(ledoit_wolf_shrinkage(x), rel=1e-9)


@pytest.mark.parametrize("n,c", [(30, 1), (12, 3), (200, 1)])  # fewer images than pixels, and more
def test_pca_wiener_is_the_dense_linear_least_squares_estimate(n, c):
    train = _faces(n, c)
    clean = _faces(5, c, seed=1)
    rng = np.random.default_rng(2)
    sigmas = np.array([0.05, 0.1, 0.2, 0.3, 0.0])  # per image (blind noise), and none
    noisy = clean + sigmas[:, None, None, None] * rng.standard_normal(clean.shape)
    b = BASELINES["pca-wiener"](Setup(train, train, code_length=4))
    assert b.oracle and "Ledoit-Wolf" in b.setting

    cov, mean = ledoit_wolf(train.reshape(n, -1))[0], train.reshape(n, -1).mean(0)
    expect = []
    for y, x in zip(noisy.reshape(5, -1), clean.reshape(5, -1)):
        v = (y - x).std() ** 2
        expect.append(mean + cov @ np.linalg.solve(cov + v * np.eye(len(cov)), y - mean))
    expect = np.clip(np.array(expect), 0, 1).reshape(clean.shape)
    np.testing.assert_allclose(b.denoise(noisy, clean), expect, atol=1e-8)
    np.testing.assert_allclose(b.denoise(noisy, clean)[-1], np.clip(noisy[-1], 0, 1), atol=1e-8)  # no noise: as given


def test_pca_wiener_beats_the_noisy_input_and_is_a_rival_of_denoisers_only():
    train, clean = _faces(100), _faces(10, seed=3)
    noisy = np.clip(clean + 0.2 * np.random.default_rng(4).standard_normal(clean.shape), 0, 1)
    out = BASELINES["pca-wiener"](Setup(train, train, code_length=4)).denoise(noisy, clean)
    assert ((out - clean) ** 2).mean() < ((noisy - clean) ** 2).mean() / 4
    assert "pca-wiener" in CLASSICAL and "pca-wiener" in rivals(denoising=True) and rivals(denoising=False) == ("pca",)
    with pytest.raises(Exception, match="pca-wiener is a denoiser"):
        applicable(("pca-wiener",), denoising=False)


def test_one_training_image_is_the_estimate():
    """No variance to learn from one image: the estimate is its mean, the training image itself."""
    train = _faces(1)
    out = BASELINES["pca-wiener"](Setup(train, train, code_length=4)).denoise(np.clip(train + 0.1, 0, 1), train)
    np.testing.assert_allclose(out, train)


def test_pca_wiener_fits_large_images_in_bounded_memory(monkeypatch):
    import aekit.baselines as b
    monkeypatch.setattr(b, "WIENER_BYTES", 8 * 30 * 10)  # room for 10 images of 30 values
    train = _faces(40)
    assert BASELINES["pca-wiener"](Setup(train, train, code_length=4)).setting.startswith("9 components")


def test_a_baseline_whose_packages_are_missing_is_left_out_or_named(monkeypatch):
    """scikit-image without PyWavelets: nlmeans (its sigma estimate) and wavelet need both; the end-of-run
    comparison leaves them out (it crashed at the end of training before), and naming one says what to install."""
    import importlib.util

    import aekit.baselines as b
    real = importlib.util.find_spec
    monkeypatch.setattr(b.importlib.util, "find_spec", lambda m, *a: None if m == "pywt" else real(m, *a))
    assert b.rivals(denoising=True) == ("blur", "tv", "bm3d", "pca-wiener")
    train = _faces(20)
    with pytest.raises(b.AekitError, match=r"baselines: nlmeans needs PyWavelets: pip install PyWavelets$"):
        b.build_baselines(("blur", "nlmeans"), train_clean=train, train_noisy=train, code_length=4)
