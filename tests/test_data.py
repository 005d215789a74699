import numpy as np
import pytest
import torch

import aekit
from aekit.data import load_olivetti, resize, split_indices


def test_olivetti_shape_dtype_range_and_order():
    data = load_olivetti(seed=1000)
    assert data.images.shape == (400, 1, 64, 64)
    assert data.images.dtype == torch.float32
    assert 0.0 <= float(data.images.min()) and float(data.images.max()) <= 1.0
    assert sorted(np.unique(data.labels)) == list(range(40))
    # scikit-learn's shuffle with random_state=1000 is the reference's order: same seed, same order
    again = load_olivetti(seed=1000)
    assert torch.equal(data.images, again.images)
    other = load_olivetti(seed=1)
    assert not torch.equal(data.images, other.images)


def test_missing_olivetti_is_a_clear_error(monkeypatch, tmp_path):
    import sklearn.datasets

    from aekit import data as data_mod

    def offline(**kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(sklearn.datasets, "fetch_olivetti_faces", offline)
    data_mod._fetch_olivetti.cache_clear()
    with pytest.raises(aekit.DataError, match=r"olivetti_py3\.pkz is missing.*SCIKIT_LEARN_DATA"):
        load_olivetti(data_home=str(tmp_path))
    data_mod._fetch_olivetti.cache_clear()


def test_unknown_source_is_an_error():
    with pytest.raises(aekit.DataError, match="unknown data source"):
        aekit.load_data("nowhere")


def test_legacy_bicubic_halving_takes_every_other_pixel():
    """TF1's legacy bicubic 64 -> 32 samples source pixels 0, 2, 4, ... (SPEC.md 2b)."""
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


def test_random_split_is_first_and_last_part_of_the_order():
    data = load_olivetti()
    tr, te = split_indices(data, split="random", test_fraction=0.2)
    assert list(tr) == list(range(320)) and list(te) == list(range(320, 400))
    tr, te = split_indices(data, split="random", test_fraction=0.0)
    assert len(tr) == 400 and len(te) == 0


def test_subject_split_holds_out_unseen_people():
    data = load_olivetti()
    tr, te = split_indices(data, split="subject")
    assert set(data.labels[tr]) == set(range(32))
    assert set(data.labels[te]) == set(range(32, 40))
