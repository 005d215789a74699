"""Resizing, incl. TF1's legacy bicubic against its formula (docs/reference-experiments.md, 2b), and fitting to a size."""

import numpy as np
import pytest
import torch

import aekit
from aekit.data import fit_images, resize


def test_legacy_bicubic_halving_takes_every_other_pixel():
    """TF1's legacy bicubic 64 -> 32 samples source pixels 0, 2, 4, ... (docs/reference-experiments.md, 2b)."""
    x = torch.rand(3, 1, 64, 64)
    assert torch.allclose(resize(x, (32, 32), "legacy-bicubic"), x[..., ::2, ::2], atol=1e-6)


def _legacy_bicubic_1d(v, n_out):
    """TF1 legacy bicubic along one axis, written out: src = i * in/out, Keys a = -0.5, clamped taps."""
    n_in = len(v)
    out = []
    for i in range(n_out):
        src = i * n_in / n_out
        f = int(np.floor(src))
        t = src - f

        def k(d):
            d = abs(d)
            if d <= 1:
                return 1.5 * d**3 - 2.5 * d**2 + 1
            if d < 2:
                return -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2
            return 0.0

        out.append(sum(k(j - t) * v[min(max(f + j, 0), n_in - 1)] for j in (-1, 0, 1, 2)))
    return np.array(out)


def test_legacy_bicubic_upsizing_matches_the_formula():
    x = torch.rand(1, 1, 6, 5, dtype=torch.float32) * 0.5 + 0.25
    got = resize(x, (12, 10), "legacy-bicubic")[0, 0].numpy()
    rows = np.stack([_legacy_bicubic_1d(r, 10) for r in x[0, 0].numpy()])
    want = np.stack([_legacy_bicubic_1d(c, 12) for c in rows.T]).T
    np.testing.assert_allclose(got, np.clip(want, 0, 1), atol=1e-5)


@pytest.mark.parametrize("method", ["legacy-bicubic", "bicubic", "bilinear", "area", "nearest"])
def test_resize_keeps_constants_and_range(method):
    x = torch.full((2, 3, 40, 30), 0.3)
    y = resize(x, (20, 45), method)
    assert y.shape == (2, 3, 20, 45)
    assert torch.allclose(y, torch.full_like(y, 0.3), atol=1e-5)


def test_fit_resize_crop_pad_window():
    x = torch.rand(2, 3, 40, 20)
    assert fit_images(x, (16, 16), "resize").shape == (2, 3, 16, 16)
    crop = fit_images(x, (16, 16), "crop")  # 40x20 -> 32x16, centre 16 rows
    assert crop.shape == (2, 3, 16, 16)
    torch.testing.assert_close(crop, aekit.resize(x, (32, 16))[..., 8:24, :])
    pad = fit_images(x, (16, 16), "pad")  # 40x20 -> 16x8, black columns either side
    assert pad.shape == (2, 3, 16, 16)
    assert float(pad[..., :4].abs().max()) == 0 and float(pad[..., 12:].abs().max()) == 0
    torch.testing.assert_close(pad[..., 4:12], aekit.resize(x, (16, 8)))
    with pytest.raises(aekit.DataError, match=r"faces: 40x20 is smaller than the working size 48x48.*data.fit crop"):
        fit_images(x, (48, 48), "crop", name="faces")

    window = fit_images(x, (16, 16), "window")  # the centre 16x16 at the native resolution, not resampled
    torch.testing.assert_close(window, x[..., 12:28, 2:18])
    with pytest.raises(aekit.DataError, match=r"faces: 40x20 is smaller than the working size 24x24.*data.fit window"):
        fit_images(x, (24, 24), "window", name="faces")
