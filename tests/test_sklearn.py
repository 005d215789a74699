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
    return AutoencoderTransformer(model="conv", code_length=kw.pop("code_length", 144), epochs=kw.pop("epochs", 1),
                                  batch_size=16, model_params=TINY, **kw)


@pytest.mark.parametrize("params", [{}, {"model": "conv"}, {"model": "vae", "code_length": 4}, "tiny"], ids=str)
def test_scikit_learn_estimator_checks(params):
    """Every check passes with scale='minmax' (the checks feed arbitrary real values, not images in
    [0, 1]; with the default scale='none' those inputs are refused by design: see the next test), also
    for conv and vae, whose strides need sides they divide (the checks' 1x1 to 4x4 images are padded)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # dozens of tiny fits: thread start-up would dominate
    est = tiny(scale="minmax") if params == "tiny" else AutoencoderTransformer(epochs=1, scale="minmax", **params)
    try:
        results = check_estimator(est, on_fail=None)
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
    ae = AutoencoderTransformer(model="conv", code_length=64, epochs=2, batch_size=8,
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
    assert ae.score(x) == pytest.approx(-np.mean((ae.inverse_transform(ae.transform(x)) - x) ** 2), rel=1e-5)
    assert ae.get_params()["code_length"] == 64
    assert ae.set_params(epochs=3).epochs == 3


def test_the_hybrid_model_is_pca_before_it_trains_and_better_after():
    """model="hybrid" starts at PCA: with a learning rate of 0 its codes and reconstructions are
    PCA's; trained, it reconstructs the training images better than PCA with as many components."""
    g = np.random.default_rng(0)
    yy, xx = np.mgrid[0:12, 0:12] / 11
    centres = g.random((60, 2, 2))
    X = sum(np.exp(-((xx - centres[:, i, 0, None, None]) ** 2 + (yy - centres[:, i, 1, None, None]) ** 2) / 0.04)
            for i in range(2)).reshape(60, -1)
    X = (X / X.max(1, keepdims=True)).astype(np.float32)
    pca = PCA(n_components=5, svd_solver="full").fit(X)
    params = {"hidden": 32, "refine_channels": 0}
    start = AutoencoderTransformer(model="hybrid", code_length=5, epochs=1, lr=0.0, batch_size=20, loss="mse",
                                   select=False, model_params=params).fit(X)
    np.testing.assert_allclose(np.abs(start.transform(X)), np.abs(pca.transform(X)), atol=1e-4)
    pca_error = ((pca.inverse_transform(pca.transform(X)).clip(0, 1) - X) ** 2).mean()  # aekit clips outputs
    assert ((start.inverse_transform(start.transform(X)) - X) ** 2).mean() == pytest.approx(pca_error, rel=0.05)
    trained = AutoencoderTransformer(model="hybrid", code_length=5, epochs=60, lr=3e-3, batch_size=20, loss="mse",
                                     select=False, model_params=params).fit(X)
    assert ((trained.inverse_transform(trained.transform(X)) - X) ** 2).mean() < 0.8 * pca_error


@pytest.mark.parametrize("shape", [(32, 32), (64, 64), (23, 28)])
def test_the_defaults_fit_images_of_any_shape(shape):
    """AutoencoderTransformer() with its defaults: a PCA-started model that works at any size."""
    g = np.random.default_rng(0)
    X = g.random((40, shape[0] * shape[1])).astype(np.float32)
    est = AutoencoderTransformer(image_shape=shape, epochs=1).fit(X)
    assert est.transform(X).shape == (40, 64)
    assert est.inverse_transform(est.transform(X)).shape == X.shape
    square = AutoencoderTransformer(epochs=1).fit(X[:, : 24 * 24])  # rows of a square image
    assert square.transform(X[:, : 24 * 24]).shape == (40, 64)


@pytest.mark.parametrize("model", ["conv", "vae"])
def test_strided_models_take_images_of_any_size_padded_to_what_their_strides_divide(model):
    """23x28 faces: conv (stride 2) and vae (stride 4) work at 24x28, and every output is cropped back."""
    X = np.random.default_rng(0).random((30, 23, 28)).astype(np.float32)
    est = AutoencoderTransformer(model=model, code_length=8, epochs=1).fit(X)
    assert est.model_size_ == (24, 28) and est.model_.config.input_size == (24, 28)
    assert est.inverse_transform(est.transform(X)).shape == X.shape
    recon = est.inverse_transform(est.transform(X))
    assert est.score(X) == pytest.approx(-np.mean((recon - X) ** 2), rel=1e-5)
    with pytest.warns(UserWarning, match="600 values are not square images"):
        rows = AutoencoderTransformer(model=model, code_length=8, epochs=1).fit(X.reshape(30, -1)[:, :600])
    assert rows.image_shape_ == (1, 25, 25) and rows.model_size_ == {"conv": (26, 26), "vae": (28, 28)}[model]
    assert rows.inverse_transform(rows.transform(X.reshape(30, -1)[:, :600])).shape == (30, 600)


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_score_is_the_reconstructions_mse_in_the_units_of_x_whatever_the_loss(loss):
    """score is -MSE per value of inverse_transform(transform(X)) in X's own units (here minmax-scaled
    0-16 values, rows padded into a square and cropped back), so a grid search over losses or models
    compares like with like."""
    X = np.random.default_rng(0).integers(0, 17, (40, 50)).astype(np.float64)
    with pytest.warns(UserWarning, match="50 values are not square images"):
        ae = AutoencoderTransformer(code_length=6, epochs=2, loss=loss, scale="minmax").fit(X)
    expected = -np.mean((ae.inverse_transform(ae.transform(X)) - X) ** 2)
    assert ae.score(X) == pytest.approx(expected, rel=1e-5)
    assert -ae.score(X) > 1  # in the 0-16 units, not in [0, 1]
    wider = X * 2 - 8  # outside the range fit saw: clipped on the way in, scored against X itself
    expected = -np.mean((ae.inverse_transform(ae.transform(wider)) - wider) ** 2)
    assert ae.score(wider) == pytest.approx(expected, rel=1e-5)


def test_numpy_integers_are_integer_settings():
    """A grid search over np.arange hands the estimator NumPy integers: every fit failed on them."""
    X = np.random.default_rng(0).random((20, 64))
    ae = AutoencoderTransformer(code_length=np.int64(4), epochs=np.int64(1)).fit(X)
    assert ae.transform(X).shape == (20, 4)


@pytest.mark.parametrize("params, message", [
    ({"code_length": 0}, "code_length must be at least 1, got 0"),
    ({"epochs": 0}, "epochs must be at least 1, got 0"),
    ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
    ({"lr": -1.0}, "lr must be 0 or more"),
    ({"random_state": -1}, "random_state must lie in [0, 2147483647]"),
    ({"model": "hybird"}, "model: unknown model 'hybird' (did you mean 'hybrid'?)"),
    ({"model_params": {"hiden": 3}}, "model_params: unknown key 'hiden' (did you mean 'hidden'?)"),
    ({"device": "tpu"}, "device 'tpu': not a device"),
    ({"epochs": 2.0}, "epochs: expected an integer, got 2.0"),
    ({"lr": "0.1"}, "lr: expected a number, got '0.1'"),
    ({"select": "yes"}, "select: expected true or false, got 'yes'"),
    ({"model_params": {"code_length": 4}}, "model_params: 'code_length' is a parameter: set it there"),
    ({"model_params": {"name": "vae"}}, "model_params: 'name' is the parameter model: set it there"),
    ({"model_params": {"in_channels": 3}}, "model_params: 'in_channels' comes from X's shape (or image_shape)"),
    ({"image_shape": (2, 8), "X": np.zeros((20, 4, 4))},
     "image_shape (2, 8) does not match X's images of shape (4, 4)"),
])
def test_impossible_parameters_are_a_value_error_naming_the_parameter(params, message):
    X = params.pop("X", np.random.default_rng(0).random((20, 16)))
    with pytest.raises(ValueError) as e:
        AutoencoderTransformer(**{"epochs": 1, **params}).fit(X)
    assert message in str(e.value)


def test_fit_leaves_the_callers_global_generator_as_it_was():
    """The estimator seeds its own fit (random_state) inside a fork of torch's generator."""
    X = np.random.default_rng(0).random((20, 16))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = AutoencoderTransformer(model="vae", code_length=2, epochs=2).fit(X).transform(X)
    assert torch.equal(torch.rand(3), expected)
    np.testing.assert_array_equal(a, AutoencoderTransformer(model="vae", code_length=2, epochs=2).fit(X).transform(X))


@pytest.mark.parametrize("random_state", [None, np.random.RandomState(0), np.int64(3)])
def test_random_state_takes_what_scikit_learn_estimators_take(random_state):
    X = np.random.default_rng(0).random((20, 16))
    assert AutoencoderTransformer(code_length=4, epochs=1, random_state=random_state).fit(X).transform(X).shape == (20, 4)
    if isinstance(random_state, np.integer):  # an integer is the seed itself
        a = AutoencoderTransformer(code_length=4, epochs=2, random_state=random_state).fit(X).transform(X)
        b = AutoencoderTransformer(code_length=4, epochs=2, random_state=int(random_state)).fit(X).transform(X)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model, code", [("hybrid", 64), ("unet", 192 * 2 * 2), ("fcn", None)])
def test_every_model_fits_with_its_own_default_code_length(model, code):
    """code_length=None (the default) is the model's own; a model whose decoder also reads the encoder's
    features (fcn, unet) transforms and scores but has no inverse_transform, as scikit-learn says of a
    method an estimator lacks."""
    X = np.random.default_rng(0).random((24, 256))  # 16x16 images
    ae = AutoencoderTransformer(model=model, epochs=1, batch_size=8)
    assert hasattr(ae, "inverse_transform") == (model == "hybrid")
    ae.fit(X)
    codes = ae.transform(X)
    assert codes.shape == (24, ae.model_.code_size(16, 16)) and np.isfinite(ae.score(X))
    if code is not None:
        assert codes.shape[1] == code
    if model == "hybrid":
        assert ae.inverse_transform(codes).shape == X.shape
    else:
        with pytest.raises(AttributeError) as e:
            ae.inverse_transform(codes)
        assert "cannot decode a code on its own" in str(e.value.__cause__)


def test_shapes_it_would_misread_are_said():
    """Rows that are not square images are fitted padded, with a warning naming image_shape; channels-last
    images and impossible image shapes are refused naming the fix; a torch tensor is taken as an array."""
    g = np.random.default_rng(0)
    with pytest.warns(UserWarning, match=r"rows of 644 values are not square images: fitted as 26x26 images, padded "
                                         r"with 32 zeros; give image_shape=\(H, W\)"):
        AutoencoderTransformer(model="conv", epochs=1, code_length=8).fit(g.random((10, 23 * 28)))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) with C 1 or 3; channels last\? X.transpose\(0, 3, 1, 2\)"):
        AutoencoderTransformer(epochs=1).fit(g.random((10, 23, 28, 3)))
    for shape in [(-16, -16), "16x16", (1, 2, 3, 4)]:
        with pytest.raises(ValueError, match="image_shape must be"):
            AutoencoderTransformer(epochs=1, image_shape=shape).fit(g.random((10, 256)))
    est = AutoencoderTransformer(model="conv", epochs=1, code_length=8).fit(torch.rand(10, 16, 16))
    assert est.transform(torch.rand(3, 16, 16)).shape == (3, 8)
