"""Model selection (train.select): the start is a candidate, the best weights are kept, early stopping,
and an exact resume with selection."""

import pytest
import torch

import aekit
from aekit.training import fit
from aekit.training.selection import carve


def _model():
    return aekit.create_model("hybrid", input_size=(16, 16), code_length=4, refine_channels=4)


def _images(n=40, seed=3):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    c = torch.rand(n, 2, generator=g)
    return torch.exp(-((xx - c[:, :1, None]) ** 2 + (yy - c[:, 1:, None]) ** 2) / 0.05).unsqueeze(1)


def test_fit_carves_a_seeded_validation_split_of_its_own():
    x = torch.rand(30, 1, 4, 4)
    fit_x, val_x = carve(x, 0.1, seed=1)
    assert len(fit_x) == 27 and len(val_x) == 3
    both = torch.cat([fit_x, val_x])
    assert sorted(map(tuple, both.flatten(1).tolist())) == sorted(map(tuple, x.flatten(1).tolist()))
    assert carve(x[:5], 0.1, seed=1)[1] is None  # too few images to spare any


def test_the_best_epoch_is_kept_and_a_start_that_cannot_be_beaten_wins():
    x = _images()
    torch.manual_seed(0)
    model = _model()
    # a learning rate this high only makes the PCA start worse: selection must end at the start
    hist = fit(model, x, aekit.TrainConfig(epochs=5, batch_size=8, lr=0.5), seed=1, progress=False,
               log=lambda s: None)
    assert hist.selection["chosen_epoch"] == 0
    start = hist.selection["start"]["loss_per_sample"]
    assert all(h.validation["loss_per_sample"] > start for h in hist)
    torch.manual_seed(0)
    reference = _model()
    aekit.training.data_init(reference, carve(x, 0.1, 1)[0], seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


def test_training_stops_when_validation_stops_improving_and_ends_with_the_best_weights():
    x = _images(60)
    torch.manual_seed(0)
    model = _model()
    said = []
    hist = fit(model, x, aekit.TrainConfig(epochs=200, batch_size=10, lr=3e-3, early_stop=3), seed=2,
               progress=False, log=said.append)
    chosen = hist.selection["chosen_epoch"]
    assert len(hist) < 200 and "early stop" in hist.stopped and len(hist) == chosen + 3
    best = min(h.validation["loss_per_sample"] for h in hist)
    assert hist.selection["validation_loss"] == best == hist[chosen - 1].validation["loss_per_sample"]
    _, val = carve(x, 0.1, 2)
    again = aekit.evaluate(model, val)["loss_per_sample"]
    assert again == pytest.approx(best, rel=1e-5)  # the model is the chosen epoch's
    assert any(line.startswith("Model selection: the weights of epoch") for line in said)


def test_select_off_keeps_every_image_and_the_last_weights():
    x = _images()
    calls = []
    model = _model()
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]) if m.training else None)
    hist = fit(model, x, aekit.TrainConfig(epochs=1, batch_size=40, select=False), progress=False, log=lambda s: None)
    assert calls == [40] and hist.selection is None and not hist[0].validation


def test_a_resumed_run_with_selection_is_the_uninterrupted_run(tmp_path):
    import numpy as np

    from aekit.config import replace
    from aekit.training.checkpoints import read_checkpoint

    np.save(tmp_path / "x.npy", _images(50)[:, 0].numpy())
    cfg = replace(aekit.Config(), **{"data.source": str(tmp_path / "x.npy"), "model.name": "hybrid",
                                      "model.input_size": [16, 16], "model.code_length": 4, "model.refine_channels": 4,
                                      "train.batch_size": 8, "train.lr": 3e-3, "train.checkpoint_seconds": 0,
                                      "train.device": "cpu", "train.compare": False, "train.epochs": 6})
    full = aekit.train(cfg, out=tmp_path / "full", progress=False, log=lambda s: None)
    aekit.train(replace(cfg, **{"train.epochs": 3}), out=tmp_path / "part", progress=False, log=lambda s: None)
    _, state = read_checkpoint(tmp_path / "part")
    assert state["selection"]["best_state"] is not None
    resumed = aekit.train(cfg, out=tmp_path / "part", resume=True, progress=False, log=lambda s: None)
    assert resumed.metrics["selection"]["chosen_epoch"] == full.metrics["selection"]["chosen_epoch"]
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h.loss_per_sample for h in resumed.history] == [h.loss_per_sample for h in full.history]


@pytest.mark.parametrize("left_only", [True, False])
def test_with_flips_the_start_with_or_without_mirror_images_is_chosen_on_validation(left_only):
    x = _images(60)
    if left_only:  # every blob on the left: mirror images are of another kind, and their PCA start is worse
        x = torch.cat([x[..., :8], torch.zeros_like(x[..., 8:])], -1)
    fit_x, val_x = carve(x, 0.1, 1)
    scores = {}
    for mirrors in (True, False):
        torch.manual_seed(0)
        start = _model()
        aekit.training.data_init(start, fit_x, seed=1, mirrors=mirrors)
        scores[mirrors] = aekit.evaluate(start, val_x)["loss_per_sample"]
    torch.manual_seed(0)
    model = _model()
    said = []
    hist = fit(model, x, aekit.TrainConfig(epochs=1, batch_size=8, hflip=True), seed=1, progress=False,
               log=said.append)
    assert hist.selection["start"]["loss_per_sample"] == pytest.approx(min(scores.values()), rel=1e-5)
    if left_only:
        assert scores[False] < scores[True]
    line = next(s for s in said if s.startswith("The start: hybrid set up on the training images"))
    assert ("alone" in line) == (scores[False] < scores[True])
    assert hist.selection["start_setup"] == line.removeprefix("The start: ")  # in metrics.json's selection


@pytest.mark.parametrize("left_only", [True, False])
def test_fit_with_hflip_auto_flips_exactly_when_the_mirrored_start_wins_on_validation(left_only):
    x = _images(20)  # few images: the mirror images of blobs anywhere are more of the same
    if left_only:
        x = torch.cat([x[..., :8], torch.zeros_like(x[..., 8:])], -1)
    said, seen = [], []
    model = aekit.create_model("hybrid", input_size=(16, 16), code_length=8, refine_channels=4)
    model.register_forward_pre_hook(lambda m, i: seen.append(i[0].clone()) if m.training else None)
    hist = fit(model, x, aekit.TrainConfig(epochs=1, batch_size=20), seed=1, progress=False, log=said.append)
    start = next(s for s in said if s.startswith("The start:"))
    flips = next(s for s in said if s.startswith("Left-right flips:"))
    mirrored = "and their mirror images" in start
    assert flips.startswith("Left-right flips: on" if mirrored else "Left-right flips: off")
    assert mirrored != left_only  # blobs anywhere: mirror images are more of the same; on the left only: not
    right_half = float(torch.cat(seen)[..., 8:].abs().sum())
    assert (right_half > 0) == mirrored  # training flipped some of the left-only images only when it chose to
    assert hist.selection["chosen_epoch"] is not None
