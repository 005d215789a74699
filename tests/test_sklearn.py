"""aekit.sklearn.AutoencoderTransformer: scikit-learn's own estimator checks, and use in a Pipeline."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import check_estimator

from aekit.sklearn import AutoencoderTransformer

# a tiny model that works at any image size: no strides; 144 is a multiple of 1, 4, 9 and 16 cells,
# so rows of up to 16 features (the checks' data) fit the decoder's reshape
TINY = {"encoder_channels": [4], "encoder_strides": [1], "decoder_channels": [4], "decoder_strides": [1]}


def tiny(**kw):
    return AutoencoderTransformer(code_length=kw.pop("code_length", 144), epochs=kw.pop("epochs", 1),
                                  batch_size=16, model_params=TINY, **kw)


def test_scikit_learn_estimator_checks():
    """Every check passes with scale='minmax' (the checks feed arbitrary real values, not images in
    [0, 1]; with the default scale='none' those inputs are refused by design: see the next test)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # dozens of tiny fits: thread start-up would dominate
    try:
        results = check_estimator(tiny(scale="minmax"), on_fail=None)
    finally:
        torch.set_num_threads(threads)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert failed == []
    assert sum(r["status"] == "passed" for r in results) > 40


def test_values_outside_unit_range_are_refused():
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        tiny().fit(np.full((8, 16), 2.0))


def test_in_a_pipeline_in_place_of_pca(tiny_images):
    x = tiny_images[:16, 0].numpy()  # (16, 32, 32)
    flat = x.reshape(16, -1)
    ae = AutoencoderTransformer(code_length=64, epochs=2, batch_size=8,
                                model_params={"encoder_channels": [4, 4], "encoder_strides": [2, 1],
                                              "decoder_channels": [4, 4], "decoder_strides": [2, 2]})
    for step in (ae, PCA(n_components=8)):
        pipe = make_pipeline(step).fit(flat)
        assert pipe.transform(flat).shape[0] == 16
    codes = ae.fit(flat).transform(flat)
    assert codes.shape == (16, 64)
    back = ae.inverse_transform(codes)
    assert back.shape == flat.shape and 0 <= back.min() and back.max() <= 1
    assert ae.fit(x).inverse_transform(ae.transform(x)).shape == x.shape  # (N, H, W) in, (N, H, W) out
    assert ae.score(x) < 0
    assert ae.get_params()["code_length"] == 64
    assert ae.set_params(epochs=3).epochs == 3
