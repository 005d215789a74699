"""The training loop: the reference's loop and loss unit, seeding, held-out metrics, the hook, stopping."""

import os
import re

import pytest
import torch

import aekit
from aekit.training import batch_starts, fit
from aekit.training.preflight import train_config


def test_reference_loop_quirk_gives_seven_batches_of_fifty():
    assert len(batch_starts(400, 50, reference_loop=True)) == 7
    assert list(batch_starts(400, 50, reference_loop=True))[-1] == 300
    assert len(batch_starts(400, 50, reference_loop=False)) == 8
    assert len(batch_starts(401, 50, reference_loop=False)) == 9  # the last, partial batch is kept


def test_fit_with_the_quirk_trains_on_350_of_400_and_divides_by_400():
    """The reference's loop takes 7 batches of 50 (350 images) and still divides the summed loss by 400."""
    x = torch.rand(400, 1, 32, 32)
    model = aekit.create_model("conv", encoder_channels=(4,), encoder_strides=(2,),
                               decoder_channels=(4,), decoder_strides=(2,))
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    # lr 0: the losses are the start's; float32 like the check below (auto is bf16 on an AVX512-BF16 CPU)
    cfg = aekit.TrainConfig(epochs=1, batch_size=50, reference_loop=True, lr=0.0, select=False, amp="off")
    hist = fit(model, x, cfg, seed=7, progress=False, log=lambda s: None)
    assert calls == [50] * 7
    seen = torch.randperm(400, generator=torch.Generator().manual_seed(7))[:350]  # the epoch's shuffled order
    with torch.no_grad():
        summed = float(model(x[seen]).per_sample.sum())
    assert hist[0].loss_per_sample == pytest.approx(summed / 400, rel=1e-5)
    assert hist[0].loss_per_sample != pytest.approx(summed / 350, rel=1e-3)


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
    assert set(hist[-1].heldout) == {"loss_per_sample", "code_mean", "code_small", "mse", "psnr", "ssim", "recon_spread"}


def test_the_hook_sees_every_epoch_with_the_whole_history(tiny_images):
    seen = []
    cfg = aekit.TrainConfig(epochs=3, batch_size=8)
    fit(aekit.create_model("conv"), tiny_images, cfg, progress=False, log=lambda s: None,
        on_epoch=lambda ctx: seen.append((ctx.stats.epoch, len(ctx.history), ctx.snapshot()["epoch"], ctx.agree(True))))
    assert seen == [(1, 1, 1, True), (2, 2, 2, True), (3, 3, 3, True)]


def test_early_stop_on_heldout_loss():
    x = torch.rand(40, 1, 32, 32)
    model = aekit.create_model("conv", encoder_channels=(4,), encoder_strides=(2,), decoder_channels=(4,),
                               decoder_strides=(2,))
    # a learning rate of ~0 never improves the held-out loss after the first evaluation
    cfg = aekit.TrainConfig(epochs=50, batch_size=20, lr=1e-12, eval_every=1, early_stop=3)
    hist = fit(model, x[:30], cfg, test_images=x[30:], progress=False, log=lambda s: None)
    assert len(hist) < 50 and "early stop" in hist.stopped


def test_a_batch_larger_than_the_training_set_takes_the_whole_set_with_a_notice(tiny_images):
    said = []
    model = aekit.create_model("conv")
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    fit(model, tiny_images[:12], aekit.TrainConfig(epochs=2, batch_size=50, select=False), progress=False,
        log=said.append)
    assert calls == [12, 12]
    assert "note: train.batch_size 50 is larger than the 12 training images: each step takes all 12" in said


def test_the_reference_loop_still_needs_more_than_one_batch(tiny_images):
    with pytest.raises(aekit.ConfigError, match="train.batch_size 50 is larger than the 24 training images "
                                                r"\(the reference loop needs more than one batch\)"):
        fit(aekit.create_model("conv"), tiny_images, aekit.TrainConfig(epochs=1, batch_size=50, reference_loop=True, select=False),
            progress=False)


def test_fit_takes_numpy_arrays_and_ends_in_eval_mode(tiny_images):
    model = aekit.create_model("conv")
    aekit.fit(model, tiny_images.numpy(), aekit.TrainConfig(epochs=1), progress=False, log=lambda s: None)
    assert model.training is False  # as it would be used: a VAE's output is then its mean's decoding


@pytest.mark.parametrize("images, message", [
    (lambda x: x.repeat(1, 3, 1, 1), "train_images: 3 channels; the model takes 1 (model.in_channels)"),
    (lambda x: aekit.resize(x, (64, 64)), "train_images: 64x64 images; the conv model takes 32x32 (aekit.resize"),
    (lambda x: x[:, 0], "train_images: got (24, 32, 32) float32; the model takes (N, 1, H, W) floats in [0, 1]"),
    (lambda x: x.double() * 255, "], outside [0, 1]: scale them (e.g. divide by 255)"),
    (lambda x: x[:0], "train_images: no images"),
    (lambda x: torch.where(torch.arange(24)[:, None, None, None] == 5, float("nan"), x),
     "train_images: NaN or Inf in image 5 (and 0 more)"),
    (lambda x: [x[0], x[1, :, :16]], "train_images: a list that does not stack into one (N, C, H, W) array"),
])
def test_images_the_model_cannot_take_are_a_one_line_error(tiny_images, images, message):
    with pytest.raises(aekit.DataError) as e:
        aekit.fit(aekit.create_model("conv"), images(tiny_images), aekit.TrainConfig(epochs=1), progress=False)
    assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(aekit.DataError, match="test_images: 3 channels"):
        aekit.fit(aekit.create_model("conv"), tiny_images, aekit.TrainConfig(epochs=1), progress=False,
                  test_images=tiny_images.repeat(1, 3, 1, 1))
    with pytest.raises(aekit.DataError, match="^images: no images$"):
        aekit.evaluate(aekit.create_model("conv"), tiny_images[:0])


def test_fit_takes_a_list_of_images_and_a_dict_or_no_config(tiny_images):
    model = aekit.create_model("conv")
    history = aekit.fit(model, list(tiny_images.numpy()), {"epochs": 1, "select": False}, progress=False, log=print)
    assert len(history) == 1
    assert train_config(None) == aekit.TrainConfig()  # no config: the defaults


@pytest.mark.parametrize("settings, message", [
    ({"schedule": "linear"}, "train.schedule: 'linear' is not one of 'constant', 'cosine'"),
    ({"hflip": "yes"}, "train.hflip: 'yes' is not one of 'auto', True, False"),
    ({"epochs": 2.0}, "train.epochs: expected an integer, got 2.0"),
    ({"epochs": "3"}, "train.epochs: expected an integer, got '3'"),
])
def test_fit_checks_the_types_and_choices_of_a_hand_built_config(tiny_images, settings, message):
    """A TrainConfig built in Python is read as a config file is (a misspelt schedule trained at a constant rate)."""
    with pytest.raises(aekit.ConfigError, match=re.escape(message)):
        aekit.fit(aekit.create_model("conv"), tiny_images[:8], aekit.TrainConfig(**settings), progress=False)
    with pytest.raises(aekit.ConfigError, match="config: expected an aekit.TrainConfig, a dict of its fields or None"):
        aekit.fit(aekit.create_model("conv"), tiny_images[:8], 3, progress=False)


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "fit: train.epochs must be at least 1, got 0"),
    ("batch_size", 0, "fit: train.batch_size must be at least 1"),
    ("ema", 1.0, "fit: train.ema must lie in [0, 1)"),
])
def test_fit_refuses_what_the_command_line_refuses(tiny_images, field, value, message):
    """aekit.fit checks its TrainConfig as aekit train checks its options (it trained 0 epochs silently)."""
    with pytest.raises(aekit.AekitError) as e:
        aekit.fit(aekit.create_model("conv"), tiny_images[:8], aekit.TrainConfig(**{field: value}), progress=False)
    assert message in str(e.value)


def test_an_epoch_longer_than_the_time_limit_is_cut_at_it():
    """One process: the limit holds even when one epoch is longer than it (a large folder on a small CPU)."""
    from test_devices import _images16, _quiet_fit, _small_model

    history = _quiet_fit(_small_model(), _images16(), epochs=5, batch_size=2, max_minutes=1e-6, select=False)
    assert len(history) == 1 and history.stopped.endswith(
        "reached after epoch 1 (its first 1 of 8 batches: the epoch was longer than the limit)"), history.stopped
    whole = _quiet_fit(_small_model(), _images16(), epochs=1, batch_size=2, select=False)
    assert 0 < history[0].loss_per_sample < 2 * whole[0].loss_per_sample  # per image of the batches it ran


def test_the_bar_moves_with_every_batch_and_stands_at_each_epoch_after_it(tiny_images, monkeypatch):
    """An epoch of a large folder (216 s) left the bar over the epochs where it was: it moves by each batch's
    share of an epoch (2.5/10: half of the third epoch done)."""
    import aekit.training.loop
    from aekit.progress import FractionBar

    positions = []

    class Recorded(FractionBar):
        def at(self, position):
            positions.append(position)
            super().at(position)

    monkeypatch.setattr(aekit.training.loop, "FractionBar", Recorded)
    model = aekit.create_model("conv")
    fit(model, tiny_images[:16], aekit.TrainConfig(epochs=2, batch_size=4, select=False), progress=True,
        log=lambda s: None)
    assert positions == [0.25, 0.5, 0.75, 1, 1, 1.25, 1.5, 1.75, 2, 2]
    positions.clear()
    fit(model, tiny_images[:16], aekit.TrainConfig(epochs=1, batch_size=4, select=False), progress=False,
        log=lambda s: None)
    assert positions == []


def test_threads_are_at_most_one_per_core(tiny_images):
    """train.threads from a run folder from elsewhere (a resume obeys it): 3000 started hundreds of threads."""
    before = torch.get_num_threads()
    try:
        fit(aekit.create_model("conv"), tiny_images[:20], aekit.TrainConfig(epochs=1, threads=3000, select=False),
            progress=False, log=lambda s: None)
        assert torch.get_num_threads() == min(3000, os.cpu_count())
    finally:
        torch.set_num_threads(before)
