"""--tensorboard: the history's scalars and reconstruction grids, written with TensorBoard's writer."""

import csv
import sys

import pytest

import aekit
from aekit.errors import AekitError
from aekit.report.tensorboard import TensorBoardLog


def test_tensorboard_logs_the_history_and_reconstruction_grids(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tiny_run.out / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    with open(tiny_run.out / "history.csv", newline="") as f:
        history = list(csv.DictReader(f))
    for key in ("loss_per_sample", "code_mean", "code_std"):
        logged = [(e.step, e.value) for e in events.Scalars(f"train/{key}")]
        assert logged == [(int(r["epoch"]), pytest.approx(float(r[key]), rel=1e-6)) for r in history]
    for key in ("loss_per_sample", "code_mean", "mse", "psnr", "ssim"):  # held out every epoch here
        logged = [(e.step, e.value) for e in events.Scalars(f"heldout/{key}")]
        assert logged == [(int(r["epoch"]), pytest.approx(float(r[f"heldout_{key}"]), rel=1e-6)) for r in history]
    for key in ("loss_per_sample", "psnr"):  # what model selection follows
        logged = [(e.step, e.value) for e in events.Scalars(f"validation/{key}")]
        assert logged == [(int(r["epoch"]), pytest.approx(float(r[f"val_{key}"]), rel=1e-6)) for r in history]
    grids = events.Images("reconstructions")
    assert [g.step for g in grids] == [1, 2] and all(g.width > 0 and g.height > 0 for g in grids)


def test_tensorboard_without_the_package_is_a_clear_error(monkeypatch, tiny_images):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(AekitError, match=r"pip install 'aekit\[tensorboard\]'"):
        TensorBoardLog("unused", aekit.create_model("conv"), tiny_images, every=1, last=1)
