"""The Olivetti faces: shape, dtype, range, the reference's order, and a clear error when the cache is missing."""

import numpy as np
import pytest
import torch

import aekit
from aekit.data import load_olivetti
from aekit.data import olivetti


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


def test_missing_olivetti_is_a_clear_error_without_third_party_warnings(monkeypatch, tmp_path, recwarn, capsys):
    def offline(**kwargs):
        import warnings

        print("downloading Olivetti faces from https://ndownloader.figshare.com/files/5976027")
        warnings.warn("Retry downloading from url: https://ndownloader.figshare.com/files/5976027")
        raise OSError("network unreachable")

    import sklearn.datasets  # where olivetti._fetch_olivetti imports it from, when it is called

    monkeypatch.setattr(sklearn.datasets, "fetch_olivetti_faces", offline)
    olivetti._fetch_olivetti.cache_clear()
    with pytest.raises(aekit.DataError, match=r"olivetti_py3\.pkz is missing.*SCIKIT_LEARN_DATA") as e:
        load_olivetti(data_home=str(tmp_path))
    olivetti._fetch_olivetti.cache_clear()
    assert "\n" not in str(e.value)
    assert [str(w.message) for w in recwarn] == []  # scikit-learn's retry warnings are not shown
    assert capsys.readouterr().out == ""  # nor its "downloading ..." line
    typo = tmp_path / "no" / "such" / "data_home"  # a mistyped folder is not left behind
    with pytest.raises(aekit.DataError, match="is missing"):
        load_olivetti(data_home=str(typo))
    olivetti._fetch_olivetti.cache_clear()
    assert not (tmp_path / "no").exists()


class _Planted:
    """What a crafted cache holds: unpickling it calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("what, said", [
    ("code", "it names posix.system"),
    ("objects", "an array of Python objects"),
])
def test_a_planted_olivetti_cache_runs_no_code(tmp_path, what, said):
    """A run folder's config.toml may name a data_home of its own: a cache planted there ran code as scikit-learn
    loaded it (joblib unpickles) in evaluate, --resume, export, map and score."""
    import joblib

    marker = tmp_path / "ran"
    home = tmp_path / "home"
    home.mkdir()
    planted = _Planted(marker) if what == "code" else np.array([_Planted(marker)], dtype=object)
    joblib.dump(planted, home / olivetti.OLIVETTI_FILE, compress=6)
    with pytest.raises(aekit.DataError, match=f"olivetti: {home / olivetti.OLIVETTI_FILE}: not the cache scikit-learn "
                                              f"writes \\({said}: loading it could run code\\)"):
        load_olivetti(data_home=str(home))
    assert not marker.exists()
    assert load_olivetti().images.shape == (400, 1, 64, 64)  # the real cache still reads, as plain arrays
