"""The reconstruction losses: by hand, against the metrics, and how a batch combines them."""

import pytest
import torch

import aekit
from aekit.metrics import image_metrics, psnr
from aekit.models.losses import LOSSES, LossName, batch_loss, is_sum, reconstruction_loss


def test_l2_loss_is_half_the_summed_squared_error():
    """tf.nn.l2_loss(output - input) of one sample, by hand."""
    recon = torch.tensor([[[[0.5, 1.0], [0.0, 0.25]]]])
    target = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])
    # differences 0.5, 0.5, -1, 0 -> squares 0.25 + 0.25 + 1 + 0 = 1.5 -> half = 0.75
    assert float(reconstruction_loss(recon, target, "l2")[0]) == pytest.approx(0.75)
    assert float(reconstruction_loss(recon, target, "mse")[0]) == pytest.approx(1.5 / 4)


def test_psnr_loss_is_minus_each_images_psnr_and_its_batch_mean_minus_the_reported_psnr():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(5, 1, 8, 8, generator=g)
    recon = (target + 0.1 * torch.randn(5, 1, 8, 8, generator=g)).clamp(0, 1)
    per_sample = reconstruction_loss(recon, target, "psnr")
    torch.testing.assert_close(per_sample, -psnr(recon, target).float(), atol=1e-4, rtol=0)
    assert float(per_sample.mean()) == pytest.approx(-image_metrics(recon, target)["psnr"], rel=1e-5)
    assert torch.isfinite(reconstruction_loss(target, target, "psnr")).all()  # a perfect reconstruction: -100 dB


def test_model_loss_is_the_batch_sum_in_the_reference_unit(tiny_images):
    model = aekit.create_model("conv")
    x = tiny_images[:5]
    with torch.no_grad():
        out = model(x)
        by_hand = 0.5 * ((out.recon - x) ** 2).sum()
    assert float(out.loss) == pytest.approx(float(by_hand), rel=1e-5)
    assert float(out.per_sample.sum()) == pytest.approx(float(by_hand), rel=1e-5)


def test_the_table_says_which_losses_are_batch_sums():
    import typing

    assert typing.get_args(LossName) == tuple(LOSSES)
    assert {k for k in LOSSES if is_sum(k)} == {"l2", "bce"}
    per_sample = torch.tensor([1.0, 2.0, 3.0])
    assert float(batch_loss(per_sample, "l2")) == 6.0 and float(batch_loss(per_sample, "psnr")) == 2.0


def test_a_sparse_models_loss_unit_names_its_penalty():
    from aekit.models.losses import loss_unit

    assert "sparsity" not in loss_unit("l2", (32, 32))
    assert loss_unit("l2", (32, 32), 0.01).endswith(", plus 0.01 x the code's L1 norm (the sparsity penalty)")


def test_a_vaes_loss_unit_names_its_kl_term():
    from aekit.models.losses import loss_unit

    assert loss_unit("bce", (32, 32), beta=4.0).endswith(", plus 4 x the KL divergence of the code from the prior "
                                                        "(beta 1: the negative ELBO)")
