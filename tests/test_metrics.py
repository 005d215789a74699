"""Our metrics against scikit-image's reference implementations."""

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from aekit.metrics import image_metrics, mse, psnr, ssim


def _pair(c, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, c, h, w, generator=g)
    y = (x + 0.1 * torch.randn(3, c, h, w, generator=g)).clamp(0, 1)
    return x, y


@pytest.mark.parametrize("shape", [(1, 32, 32), (1, 64, 48), (3, 32, 32)])
def test_ssim_agrees_with_scikit_image(shape):
    x, y = _pair(*shape)
    ours = ssim(x, y).numpy()
    for i in range(len(x)):
        a, b = x[i].double().numpy(), y[i].double().numpy()
        if shape[0] == 1:
            ref = structural_similarity(a[0], b[0], data_range=1.0)
        else:
            ref = structural_similarity(a, b, data_range=1.0, channel_axis=0)
        assert abs(ours[i] - ref) < 1e-4


def test_psnr_and_mse_agree_with_scikit_image():
    x, y = _pair(1, 32, 32)
    for i in range(len(x)):
        a, b = x[i, 0].double().numpy(), y[i, 0].double().numpy()
        assert float(mse(x, y)[i]) == pytest.approx(mean_squared_error(a, b), rel=1e-6)
        assert float(psnr(x, y)[i]) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), rel=1e-6)


def test_image_metrics_averages_per_image_psnr():
    x, y = _pair(1, 32, 32)
    m = image_metrics(x, y)
    assert m["psnr"] == pytest.approx(float(psnr(x, y).mean()))
    assert set(m) == {"mse", "psnr", "ssim"}
    assert ssim(x, x).numpy() == pytest.approx(np.ones(3))
