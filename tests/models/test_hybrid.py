"""The hybrid (PCA-started) model: its start is scikit-learn's PCA, exactly, and training moves on from it."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

import aekit
from aekit.noise import NoiseConfig, make_corruption
from aekit.pipeline import Pipeline
from aekit.training import data_init


def _faces(n=40, size=16, seed=3):
    """Smooth, correlated synthetic images: a few random blobs each."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    centres = torch.rand(n, 3, 2, generator=g)
    img = sum(torch.exp(-((xx - centres[:, i, 0, None, None]) ** 2 + (yy - centres[:, i, 1, None, None]) ** 2) / 0.05)
              for i in range(3))
    return (img / img.amax((1, 2), keepdim=True)).unsqueeze(1).float()


def _pca_recon(train: torch.Tensor, x: torch.Tensor, k: int, clip: bool = True) -> torch.Tensor:
    pca = PCA(n_components=k, svd_solver="full").fit(train.flatten(1).double().numpy())
    y = pca.inverse_transform(pca.transform(x.flatten(1).double().numpy()))
    y = y.clip(0, 1) if clip else y
    return torch.from_numpy(y).float().view_as(x)


def _linear(k=8, **kw):
    return aekit.create_model("hybrid", input_size=(16, 16), code_length=k, hidden=0, refine_channels=0, **kw)


def test_without_corrections_the_start_is_pca_exactly():
    train, test = _faces(40), _faces(10, seed=4)
    model = _linear()
    assert data_init(model, train)
    with torch.no_grad():
        recon = model.eval()(test).recon
    torch.testing.assert_close(recon, _pca_recon(train, test, 8), atol=1e-5, rtol=0)
    codes = model.encode(test)  # the code is the PCA scores (up to each component's sign)
    scores = PCA(n_components=8, svd_solver="full").fit(train.flatten(1).double().numpy()).transform(
        test.flatten(1).double().numpy())
    np.testing.assert_allclose(np.abs(codes.detach().numpy()), np.abs(scores), atol=1e-4)


def test_with_corrections_the_start_is_within_a_hair_of_pca():
    train = _faces(40)
    model = aekit.create_model("hybrid", input_size=(16, 16), code_length=8, hidden=32, refine_channels=4)
    data_init(model, train)
    with torch.no_grad():
        recon = model.eval()(train).recon
    assert (recon - _pca_recon(train, train, 8)).abs().max() < 2e-3


def test_mirror_images_join_the_pca_with_hflip():
    train = _faces(30)
    model = _linear()
    data_init(model, train, pipeline=Pipeline(hflip=True))
    with torch.no_grad():
        recon = model.eval()(train).recon
    both = torch.cat([train, train.flip(-1)])
    torch.testing.assert_close(recon, _pca_recon(both, train, 8), atol=1e-5, rtol=0)
    assert (recon - _pca_recon(train, train, 8)).abs().max() > 1e-3  # a different subspace


def test_denoising_starts_from_the_clean_images_pca():
    """Under noise, the basis comes from the loss targets (clean), not from the corrupted inputs."""
    train = _faces(40)
    corrupt = make_corruption(NoiseConfig(kind="gaussian", sigma=0.3))
    model = _linear()
    data_init(model, train, pipeline=Pipeline(corrupt))
    with torch.no_grad():
        recon = model.eval()(train).recon  # clean inputs: projected onto the clean images' subspace
    torch.testing.assert_close(recon, _pca_recon(train, train, 8), atol=1e-5, rtol=0)


def test_fewer_images_than_code_units_keeps_the_rest_random_and_reconstructs_the_images():
    train = _faces(6)
    torch.manual_seed(0)
    model = _linear(k=16)
    before = model.encoder.weight[6:].clone()
    data_init(model, train)
    torch.testing.assert_close(model.encoder.weight[6:], before)
    with torch.no_grad():
        # six images span a 5-dimensional affine subspace; the random extra units add a little of themselves
        partial = _linear(k=6)
        data_init(partial, train)
        exact = partial.eval()(train).recon
    torch.testing.assert_close(exact, train, atol=1e-5, rtol=0)


def test_one_image_starts_at_that_image():
    """A single training image (a folder of two, one held out): the start is its mean, the image itself."""
    train = _faces(1)
    torch.manual_seed(0)
    model = _linear(k=1)
    data_init(model, train)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(train).recon, train, atol=1e-5, rtol=0)


@pytest.mark.parametrize("init", ["pca", "random"])
def test_fit_starts_from_pca_unless_told_otherwise(init):
    train = _faces(40)

    def first_loss():
        torch.manual_seed(0)
        model = _linear(init=init)
        hist = aekit.fit(model, train, aekit.TrainConfig(epochs=1, batch_size=8, lr=0.0, threads=1, select=False),
                         progress=False, log=lambda s: None)
        return hist[0].loss_per_sample

    pca_mse = float(((_pca_recon(train, train, 8, clip=False) - train) ** 2).mean())  # training does not clip
    if init == "pca":  # with lr 0 the epoch's loss is the start's: PCA's training error
        assert first_loss() == pytest.approx(pca_mse, rel=1e-3)
    else:
        assert first_loss() > 5 * pca_mse


def test_training_improves_on_the_pca_start():
    train = _faces(64)
    torch.manual_seed(0)
    model = aekit.create_model("hybrid", input_size=(16, 16), code_length=4, hidden=64, refine_channels=8)
    hist = aekit.fit(model, train, aekit.TrainConfig(epochs=30, batch_size=16, lr=3e-3, threads=1),
                     progress=False, log=lambda s: None)
    pca_mse = float(((_pca_recon(train, train, 4, clip=False) - train) ** 2).mean())
    assert hist[-1].loss_per_sample < 0.8 * pca_mse


def test_the_linear_parts_learn_at_their_own_fraction_of_the_learning_rate():
    train = _faces(32)
    torch.manual_seed(0)
    model = aekit.create_model("hybrid", input_size=(16, 16), code_length=4, hidden=16, refine_channels=4,
                               linear_lr=0.0)
    data_init(model, train)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    aekit.fit(model, train, aekit.TrainConfig(epochs=2, batch_size=8, lr=1e-2, threads=1, select=False), progress=False,
              log=lambda s: None)
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, start[k])}
    assert not any(k.startswith(("encoder.", "decoder.")) for k in moved)  # frozen at the PCA start
    assert any(k.startswith("mlp.") for k in moved) and any(k.startswith("refine.") for k in moved)
