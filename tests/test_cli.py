"""The `aekit` command end to end: the reference run folder, options, and one-line errors."""

import json
import re
import subprocess
import sys

import pytest

from aekit.cli import build_parser, config_from_args, main

RUN_FILES = ["config.toml", "model.json", "model.safetensors", "history.csv", "metrics.json",
             "reconstructions.png", "loss.png"]


def aekit(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "aekit", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_reference_run_end_to_end(tmp_path, root):
    """Two epochs of experiment A on the real faces: every run-folder file, the reference's line format,
    and an epoch-1 loss in the reference's range."""
    out = tmp_path / "run"
    r = aekit("train", "--config", str(root / "configs" / "reference.toml"), "--epochs", "2",
              "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    lines = re.findall(r"^Epoch (\d+)\) Average loss per sample: ([\d.]+) \(Code mean: ([\d.]+)\)$",
                       r.stdout, re.M)
    assert [int(e) for e, _, _ in lines] == [1, 2]
    assert 10.0 <= float(lines[0][1]) <= 14.0
    assert 0.0 < float(lines[0][2]) < 1.0
    for name in RUN_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    history = (out / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,loss_per_sample,code_mean") and len(history) == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["epochs"] == 2
    assert metrics["train"]["images"] == 400 and metrics["heldout"] is None
    model = json.loads((out / "model.json").read_text())
    assert model["architecture"] == "conv" and model["config"]["code_length"] == 256
    assert model["preprocess"] == {"size": [32, 32], "resize": "legacy-bicubic", "channels": 1, "fit": "resize"}
    # the saved config reproduces the run
    from aekit.config import load_config

    cfg = load_config(out / "config.toml")
    assert cfg.train.epochs == 2 and cfg.train.reference_loop and cfg.seed == 1002


def test_heldout_metrics_reported_beside_training(tmp_path):
    out = tmp_path / "run"
    code = main(["train", "--epochs", "1", "--eval-every", "1", "--out", str(out), "--no-progress",
                 "--seed", "5", "--batch-size", "64"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["images"] == 320 and metrics["heldout"]["images"] == 80
    for key in ("loss_per_sample", "psnr", "ssim", "mse", "code_mean"):
        assert key in metrics["train"] and key in metrics["heldout"]
    row = (out / "history.csv").read_text().splitlines()[1].split(",")
    assert all(v != "" for v in row)  # held-out columns filled at the last epoch


def test_flags_override_the_config_file(root):
    args = build_parser().parse_args([
        "train", "--config", str(root / "configs" / "reference.toml"), "--model", "conv", "--epochs", "3",
        "--batch-size", "25", "--lr", "0.002", "--code-length", "512", "--seed", "7", "--data", "olivetti",
        "--device", "cpu", "--test-fraction", "0.25", "--data-home", "/tmp/x",
    ])
    cfg = config_from_args(args)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr) == (3, 25, 0.002)
    assert cfg.model.code_length == 512 and cfg.seed == 7 and cfg.train.device == "cpu"
    assert cfg.data.test_fraction == 0.25 and cfg.data.data_home == "/tmp/x"
    # untouched values come from the file
    assert cfg.train.reference_loop is True and cfg.data.resize == "legacy-bicubic"


def _one_line_error(r):
    assert r.returncode != 0
    err = r.stderr.strip()
    assert err.startswith("aekit: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_existing_out_is_refused_without_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    err = _one_line_error(aekit("train", "--epochs", "1", "--out", str(out)))
    assert "not empty" in err and "--overwrite" in err
    # --overwrite still refuses to delete a folder that is not an aekit run
    err = _one_line_error(aekit("train", "--epochs", "1", "--out", str(out), "--overwrite"))
    assert "not an aekit run folder" in err
    assert (out / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nope"], "unknown model 'nope'"),
        (["--epochs", "0"], "train.epochs must be at least 1"),
        (["--code-length", "100"], "code_length 100 does not fit"),
        (["--config", "missing.toml"], "missing.toml: config file not found"),
        (["--data", "nowhere"], "--data 'nowhere': unknown data source"),
        (["--batch-size", "500"], "batch_size 500 is larger than the 320 training images"),
        (["--device", "cuda:0"], "CUDA is not available"),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path, args, message):
    err = _one_line_error(aekit("train", "--out", str(tmp_path / "r"), *args, cwd=tmp_path))
    assert message in err


def test_models_lists_the_registry():
    r = aekit("models")
    assert r.returncode == 0 and r.stdout.startswith("conv")


@pytest.mark.parametrize("command", [[], ["train"], ["models"]])
def test_help_shows_examples(command):
    r = aekit(*command, "--help")
    assert r.returncode == 0 and "examples:" in r.stdout
