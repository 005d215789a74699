"""The lfw-subset source: scikit-image's bundled LFW faces, in the order an array of them would have."""

import sys

import numpy as np
import pytest
import torch

import aekit
from aekit.data import load_data, split_indices
from aekit.errors import DataError


def test_lfw_subset_is_the_100_faces_in_an_arrays_seeded_order(tmp_path):
    from skimage.data import lfw_subset

    data = load_data("lfw-subset")
    assert data.images.shape == (100, 1, 25, 25) and data.images.dtype == torch.float32
    assert 0 <= float(data.images.min()) and float(data.images.max()) <= 1
    assert data.labels is None and data.source == "lfw-subset" and data.symmetric
    np.save(tmp_path / "lfw.npy", lfw_subset()[:100].astype(np.float32))  # what a user would save by hand
    for seed in (1000, 7):
        assert torch.equal(load_data("lfw-subset", seed=seed).images, load_data(str(tmp_path / "lfw.npy"), seed=seed).images)
    assert load_data("lfw-subset", seed=7).names != data.names
    with pytest.raises(DataError, match="needs labels, and lfw-subset has none"):
        split_indices(data, split="subject")


def test_lfw_subset_without_scikit_image_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage.data", None)  # import fails
    with pytest.raises(DataError) as e:
        aekit.load_data("lfw-subset")
    assert str(e.value) == ("data.source 'lfw-subset': needs scikit-image, which ships these faces "
                            "(pip install 'aekit[baselines]')")
