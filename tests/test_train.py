import pytest
import torch

import aekit
from aekit.models.base import reconstruction_loss
from aekit.train import batch_starts, fit


def test_l2_loss_is_half_the_summed_squared_error():
    """tf.nn.l2_loss(output - input) of one sample, by hand."""
    recon = torch.tensor([[[[0.5, 1.0], [0.0, 0.25]]]])
    target = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])
    # differences 0.5, 0.5, -1, 0 -> squares 0.25 + 0.25 + 1 + 0 = 1.5 -> half = 0.75
    assert float(reconstruction_loss(recon, target, "l2")[0]) == pytest.approx(0.75)
    assert float(reconstruction_loss(recon, target, "mse")[0]) == pytest.approx(1.5 / 4)


def test_model_loss_is_the_batch_sum_in_the_reference_unit(tiny_images):
    model = aekit.create_model("conv")
    x = tiny_images[:5]
    with torch.no_grad():
        out = model(x)
        by_hand = 0.5 * ((out.recon - x) ** 2).sum()
    assert float(out.loss) == pytest.approx(float(by_hand), rel=1e-5)
    assert float(out.per_sample.sum()) == pytest.approx(float(by_hand), rel=1e-5)


def test_reference_loop_quirk_gives_seven_batches_of_fifty():
    assert len(batch_starts(400, 50, reference_loop=True)) == 7
    assert list(batch_starts(400, 50, reference_loop=True))[-1] == 300
    assert len(batch_starts(400, 50, reference_loop=False)) == 8
    assert len(batch_starts(401, 50, reference_loop=False)) == 9  # the last, partial batch is kept


def _count_steps(model):
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    return calls


def test_fit_with_the_quirk_trains_on_350_of_400_and_divides_by_400():
    x = torch.rand(400, 1, 32, 32)
    model = aekit.create_model("conv", encoder_channels=(4,), encoder_strides=(2,),
                               decoder_channels=(4,), decoder_strides=(2,))
    calls = _count_steps(model)
    cfg = aekit.TrainConfig(epochs=1, batch_size=50, reference_loop=True)
    hist = fit(model, x, cfg, progress=False, log=lambda s: None)
    assert calls == [50] * 7
    assert hist[0].loss_per_sample > 0


def test_same_seed_same_run_different_seed_different_run(tiny_images):
    def run(seed):
        torch.manual_seed(seed)
        model = aekit.create_model("conv")
        hist = fit(model, tiny_images, aekit.TrainConfig(epochs=2, batch_size=8), seed=seed,
                   progress=False, log=lambda s: None)
        return [h.loss_per_sample for h in hist], model.state_dict()

    a, wa = run(3)
    b, wb = run(3)
    c, _ = run(4)
    assert a == b
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a != c


def test_heldout_metrics_every_k_epochs_and_at_the_end(tiny_images):
    model = aekit.create_model("conv")
    cfg = aekit.TrainConfig(epochs=5, batch_size=8, eval_every=2)
    hist = fit(model, tiny_images[:16], cfg, test_images=tiny_images[16:], progress=False, log=lambda s: None)
    assert [bool(h.heldout) for h in hist] == [False, True, False, True, True]
    assert set(hist[-1].heldout) == {"loss_per_sample", "code_mean", "code_small", "mse", "psnr", "ssim"}


def test_batch_larger_than_data_is_an_error(tiny_images):
    model = aekit.create_model("conv")
    with pytest.raises(aekit.ConfigError, match="batch_size 50 is larger than the 24 training images"):
        fit(model, tiny_images, aekit.TrainConfig(epochs=1, batch_size=50), progress=False)


def test_a_run_whose_last_epoch_is_also_its_best_can_be_resumed(tmp_path):
    """The final 'last' checkpoint is written even when the last epoch was saved as 'best' only."""
    from aekit.checkpoint import read_checkpoint
    from aekit.config import replace

    cfg = replace(aekit.Config(), **{"model.encoder_channels": [4, 8], "model.encoder_strides": [2, 1],
                                     "model.decoder_channels": [8], "model.decoder_strides": [2],
                                     "train.epochs": 1, "train.eval_every": 1, "train.device": "cpu"})
    aekit.train(cfg, out=tmp_path / "run", progress=False, log=lambda s: None)
    folder, state = read_checkpoint(tmp_path / "run", "last")
    assert state["epoch"] == 1 and folder == read_checkpoint(tmp_path / "run", "best")[0]
