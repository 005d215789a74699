"""aekit score: per-image reconstruction errors, flagged above a threshold from the run's held-out images."""

import csv

import pytest

import aekit
from aekit import anomaly


def test_score_flags_what_the_model_cannot_reconstruct(tiny_run, faces, tmp_path, cli):
    folder, noise = faces
    out = tmp_path / "scores.csv"
    assert cli("score", tiny_run.out, folder, noise, "--quantile", "0.99", "--out", out).code == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [r["file"].endswith("noise.png") for r in rows] == [False] * 6 + [True]
    errors = [float(r["mse"]) for r in rows]
    assert errors[-1] > max(errors[:-1])
    assert rows[-1]["flag"] == "1"
    scores = anomaly.score(tiny_run.out, [folder], quantile=0.5)
    assert scores.heldout_images == tiny_run.metrics["heldout"]["images"] and scores.quantile == 0.5
    out = tmp_path / "more.csv"
    assert "--quantile must lie in (0, 1]" in cli("score", tiny_run.out, folder, "--quantile", "2", "--out", out).error
    assert "--threshold must be 0 or more" in cli("score", tiny_run.out, folder, "--threshold", "-1", "--out", out).error
    assert cli("score", tiny_run.out, folder, "--quantile", "0.9", "--threshold", "0.1", "--out", out).error == (
        "aekit: error: --quantile and --threshold: give one, not both (each sets the level above which an image is flagged)")
    with pytest.raises(aekit.AekitError, match="a model without its run folder needs a threshold"):
        anomaly.score(tiny_run.model, [folder])


def test_a_run_without_held_out_images_needs_a_threshold(make_run, faces, tmp_path, cli):
    from conftest import SMALL_CONV

    run = make_run(**SMALL_CONV, **{"train.epochs": 1, "data.test_fraction": 0.0})
    out = tmp_path / "scores.csv"
    assert cli("score", run.out, faces[0], "--out", out).error == (
        f"aekit: error: {run.out}: the run has no held-out images (test_fraction 0) to take the quantile from; "
        "give --threshold (the MSE above which an image is flagged)")
    assert cli("score", run.out, faces[0], "--threshold", "0.01", "--out", out).code == 0


def test_the_threshold_comes_from_the_images_the_run_held_out_or_is_refused(make_run, tmp_path, cli):
    """A folder that gained images since training splits otherwise: its held-out set would be other images
    (some trained on), so score refuses to take a quantile from it, as evaluate and --resume do."""
    from conftest import SMALL_CONV
    from helpers import make_folder

    root = make_folder(tmp_path / "pets", 12, size=(32, 32))
    run = make_run(**SMALL_CONV, **{"train.epochs": 1, "data.source": str(root), "model.in_channels": 3})
    make_folder(tmp_path / "more", 4, size=(32, 32))
    for p in (tmp_path / "more").rglob("*.png"):
        p.rename(root / p.relative_to(tmp_path / "more").parent / f"new-{p.name}")
    error = cli("score", run.out, root, "--out", tmp_path / "s.csv").error
    assert "the data changed since the run was trained" in error and "score's held-out threshold needs" in error


def test_a_run_whose_data_is_not_here_says_to_give_a_threshold(tiny_run, faces, tmp_path, cli):
    import shutil

    run = tmp_path / "moved"  # a run moved from another machine: its data is not here
    shutil.copytree(tiny_run.out, run)
    config = run / "config.toml"
    config.write_text(config.read_text().replace('source = "olivetti"', 'source = "C:\\\\Users\\\\ana\\\\faces"'))
    assert cli("score", run, faces[0], "--out", tmp_path / "s.csv").error == (
        f"aekit: error: {run}: the data it was trained on, 'C:\\\\Users\\\\ana\\\\faces' (config.toml [data] source), is "
        "not there (a relative path is read from the current folder: run from the folder it was trained in, or restore "
        "the data); give --threshold, the MSE above which an image is flagged (else the quantile of the errors on its "
        "held-out images)")
    assert cli("score", run, faces[0], "--threshold", "0.01", "--out", tmp_path / "s.csv").code == 0
