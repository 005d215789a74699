"""Weight averaging (train.ema): the average's arithmetic, and that it is the model fit() validates and keeps."""

import pytest
import torch

import aekit
from aekit.training import fit
from aekit.training.averaging import WeightAverage


def _model():
    torch.manual_seed(0)
    return aekit.create_model("conv", encoder_channels=(4,), encoder_strides=(2,), decoder_channels=(4,),
                              decoder_strides=(2,))


def test_the_average_follows_the_warm_up_rule_then_the_decay():
    model = torch.nn.Linear(3, 2)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    avg = WeightAverage(model, 0.5)
    with torch.no_grad():
        model.weight.add_(1.0)
    avg.update(model)  # step 1: keep min(0.5, 2 / 11) of the old average
    keep = 2 / 11
    assert torch.allclose(avg.average["weight"], keep * start["weight"] + (1 - keep) * model.weight)
    before = avg.average["weight"].clone()
    for _ in range(100):
        avg.update(model)  # the warm-up passes 0.5 after 8 steps: then each step halves the distance
    assert torch.allclose(avg.average["weight"], model.weight, atol=1e-6)
    assert not torch.allclose(before, model.weight)
    with avg.applied(model):
        assert torch.equal(model.weight, avg.average["weight"])
    state = avg.state()
    other = WeightAverage(torch.nn.Linear(3, 2), 0.5)
    other.restore(state)
    assert other.steps == 101 and torch.equal(other.average["weight"], avg.average["weight"])


def test_without_selection_fit_ends_with_the_averaged_weights(tiny_images):
    model = _model()
    seen = {}
    hook = lambda ctx: seen.update(average=ctx.trainer.average.state()["average"],  # noqa: E731
                                   own={k: v.clone() for k, v in ctx.trainer.model.state_dict().items()})
    fit(model, tiny_images, aekit.TrainConfig(epochs=3, batch_size=8, ema=0.9, select=False), seed=1,
        progress=False, log=lambda s: None, on_epoch=hook)
    for k, v in model.state_dict().items():
        assert torch.equal(v, seen["average"][k])
    assert any(not torch.equal(seen["own"][k], seen["average"][k]) for k in seen["own"])  # they differ


def test_selection_scores_and_keeps_the_average(tiny_images):
    model = _model()
    averages = {}
    hook = lambda ctx: averages.__setitem__(ctx.stats.epoch, ctx.trainer.average.state()["average"])  # noqa: E731
    hist = fit(model, tiny_images, aekit.TrainConfig(epochs=4, batch_size=4, ema=0.9, early_stop=0, lr=3e-3),
               seed=1, progress=False, log=lambda s: None, on_epoch=hook)
    chosen = hist.selection["chosen_epoch"]
    assert chosen >= 1, "the test wants an epoch chosen over the start"
    for k, v in model.state_dict().items():
        assert torch.equal(v, averages[chosen][k])
    # the validation figures are the average's: scoring the kept weights again gives the chosen epoch's loss
    assert hist[chosen - 1].validation["loss_per_sample"] == pytest.approx(hist.selection["validation_loss"])


def test_ema_off_keeps_no_average(tiny_images):
    model = _model()
    got = []
    fit(model, tiny_images, aekit.TrainConfig(epochs=1, batch_size=8, select=False), seed=1, progress=False,
        log=lambda s: None, on_epoch=lambda ctx: got.append(ctx.trainer.average))
    assert got == [None]
