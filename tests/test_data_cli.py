"""`aekit train` on your own images: an RGB folder end to end, the data options, and one-line errors."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from image_folders import make_folder, truncate
from PIL import Image

import aekit
from aekit.cli import build_parser, config_from_args, main

TINY = """
[model]
name = "conv"
encoder_channels = [8]
encoder_strides = [2]
decoder_channels = [8]
decoder_strides = [2]
"""


def test_rgb_folder_train_evaluate_and_reconstruct_files(tmp_path, capsys):
    """train (streaming, with --skip-bad) -> load -> evaluate -> reconstruct a file back to its own format,
    through the Python API and then through `aekit evaluate` and `aekit denoise`."""
    root = make_folder(tmp_path / "pets", 16, size=(20, 28))
    truncate(root / "cats" / "img-04.png")
    (root / "dogs" / "notes.png").write_text("not an image")
    (tmp_path / "tiny.toml").write_text(TINY)
    out = tmp_path / "run"
    code = main(["train", "--config", str(tmp_path / "tiny.toml"), "--data", str(root), "--size", "16x16",
                 "--code-length", "64", "--epochs", "2", "--batch-size", "4", "--eval-every", "1",
                 "--stream", "on", "--workers", "2", "--skip-bad", "--split", "subject", "--out", str(out),
                 "--no-progress"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "Skipped 2 unreadable image files" in stdout
    skipped = (out / "skipped.txt").read_text().splitlines()
    assert sorted(line.split(":")[0].rsplit("/", 1)[-1] for line in skipped) == ["img-04.png", "notes.png"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete"
    assert metrics["train"]["images"] == 7 and metrics["heldout"]["images"] == 8  # subject split: "dogs" held out
    meta = json.loads((out / "model.json").read_text())
    assert meta["preprocess"] == {"size": [16, 16], "resize": "bicubic", "channels": 3, "fit": "resize"}
    assert Image.open(out / "reconstructions.png").mode == "RGB"

    model = aekit.load(out)
    cfg = aekit.load_config(out / "config.toml")
    assert cfg.model.in_channels == 3 and cfg.data.channels == "auto"
    data = aekit.load_from_config(cfg.data, size=tuple(meta["preprocess"]["size"]))
    scores = aekit.evaluate(model, data.images)
    assert set(scores) == {"loss_per_sample", "code_mean", "code_small", "mse", "psnr", "ssim"} and scores["psnr"] > 5

    source = root / "dogs" / "img-01.png"
    pixels, info = aekit.read_image(source)
    x = aekit.load_image(source, size=(16, 16), channels=3)
    with torch.no_grad():
        recon = model(x[None]).recon[0]
    aekit.write_image(tmp_path / "clean.png", recon.permute(1, 2, 0).numpy(), like=info)
    with Image.open(tmp_path / "clean.png") as a, Image.open(source) as b:
        assert (a.format, a.mode, a.size) == (b.format, b.mode, b.size) == ("PNG", "RGB", (28, 20))

    # the same run through the commands: evaluate (held-out people, beside baselines) and denoise files
    capsys.readouterr()
    assert main(["evaluate", str(out), "--noise", "gaussian:0.1", "--baselines", "blur,pca"]) == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["split"] == "subject" and report["images"] == 8 and report["seen_in_training"] == 0
    assert [r["method"] for r in report["results"]] == ["noisy input", "aekit (conv)", "blur", "pca"]
    assert Image.open(out / "evaluation.png").mode == "RGB"
    assert main(["denoise", str(out), str(root / "dogs"), "--out", str(tmp_path / "clean"),
                 "--add-noise", "gaussian:0.1", "--skip-bad"]) == 0
    assert "skipped 1 unreadable files" in capsys.readouterr().out
    written = sorted(p.name for p in (tmp_path / "clean").iterdir())
    assert "grid.png" in written and "img-01.png" in written
    with Image.open(tmp_path / "clean" / "img-01.png") as a:
        assert (a.format, a.mode, a.size) == ("PNG", "RGB", (28, 20))


def test_data_options_reach_the_config():
    args = build_parser().parse_args([
        "train", "--data", "photos", "--size", "64x48", "--channels", "3", "--fit", "pad", "--layout", "nhwc",
        "--rescale", "--skip-bad", "--stream", "off", "--workers", "2", "--code-length", "768",
    ])
    cfg = config_from_args(args)
    d = cfg.data
    assert d.size == (64, 48) and cfg.model.input_size == (64, 48)  # --size sets both
    assert (d.channels, d.fit, d.layout, d.rescale, d.skip_bad, d.stream, d.workers) == (3, "pad", "nhwc", True, True, "off", 2)
    untouched = config_from_args(build_parser().parse_args(["train"])).data
    assert (untouched.channels, untouched.fit, untouched.rescale, untouched.skip_bad) == ("auto", "resize", False, False)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[data]\nfit = 'squash'\n", r"data\]\.fit: 'squash' is not one of 'resize', 'crop', 'pad'"),
        ("[data]\nchannels = 2\n", r"data\]\.channels: 2 is not one of 'auto', 1, 3"),
        ("[data]\nchannels = true\n", r"data\.channels must be 'auto', 1 or 3"),
        ("[data]\nworkers = -2\n", r"data\.workers must be 0 or more"),
        ("[data]\nskip_bad = 'yes'\n", r"data\]\.skip_bad: expected true or false"),
        ("[data]\nstreaming = true\n", r"\[data\]: unknown key 'streaming'"),
    ],
)
def test_bad_data_config_names_the_file_and_key(tmp_path, text, message):
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(aekit.ConfigError, match=message) as e:
        aekit.load_config(tmp_path / "bad.toml")
    assert "bad.toml" in str(e.value)


def _array(tmp_path, name, array):
    np.save(tmp_path / name, array)
    return str(tmp_path / name)


def _folder(tmp_path, how):
    root = make_folder(tmp_path / "imgs", 6, subfolders=())
    if how == "truncated":
        truncate(root / "img-03.png")
    elif how == "garbage":
        (root / "img-03.png").write_bytes(b"GIF89a but not really")
    return str(root)


@pytest.mark.parametrize(
    "make, options, message",
    [
        (lambda p: str(p / "nowhere"), [], "unknown data source: no such folder or file"),
        (lambda p: (p / "empty").mkdir() or str(p / "empty"), [], "no image files"),
        (lambda p: _folder(p, "garbage"), [], r"img-03\.png: not an image .*--skip-bad"),
        (lambda p: _folder(p, "truncated"), [], r"img-03\.png: cannot decode the image .*--skip-bad"),
        (lambda p: _folder(p, "ok"), ["--fit", "crop", "--size", "32x48", "--code-length", "384"],
         r"img-0\d\.png: 24x24 is smaller than the working size 32x48"),
        (lambda p: _folder(p, "ok"), ["--split", "subject"], "split 'subject' needs labels"),
        (lambda p: _array(p, "r.npy", np.zeros((4, 4))), [], r"r\.npy: shape \(4, 4\): expected"),
        (lambda p: _array(p, "a.npy", np.zeros((6, 3, 8, 3))), [], r"a\.npy: shape \(6, 3, 8, 3\) is ambiguous"),
        (lambda p: _array(p, "n.npy", np.full((6, 8, 8), np.nan)), [], r"n\.npy: NaN or Inf at index \(0, 0, 0\)"),
        (lambda p: _array(p, "f.npy", np.full((6, 8, 8), 2.0)), [], r"f\.npy: float values lie in \[2, 2\], outside \[0, 1\]"),
        (lambda p: _array(p, "z.npy", np.zeros((0, 8, 8))), [], r"z\.npy: holds zero images"),
        (lambda p: "olivetti", ["--stream", "on"], "only folders stream"),
        (lambda p: "olivetti", ["--workers", "-1"], "data.workers must be 0 or more"),
        (lambda p: "olivetti", ["--size", "64x64"], "code_length 256 does not fit"),
    ],
)
def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path, capsys, make, options, message):
    source = make(tmp_path)
    out = tmp_path / "run"
    code = main(["train", "--data", source, *options, "--epochs", "1", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("aekit: error: ") and "\n" not in err, err
    assert re.search(message, err), err
    assert not out.exists()


def test_unwritable_out_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    code = main(["train", "--data", _folder(tmp_path, "ok"), "--config", str(_tiny(tmp_path)), "--epochs", "1",
                 "--batch-size", "2", "--out", str(tmp_path / "file" / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cannot write there" in err and "\n" not in err


def _tiny(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    return tmp_path / "tiny.toml"


def test_bad_data_from_the_command_line_exits_2_without_a_traceback(tmp_path):
    bad = _array(tmp_path, "n.npy", np.full((6, 8, 8), np.nan))
    r = subprocess.run([sys.executable, "-m", "aekit", "train", "--data", bad, "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"aekit: error: {bad}: NaN or Inf at index (0, 0, 0) (image 0)"
    r = subprocess.run([sys.executable, "-m", "aekit", "train", "--size", "big"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "--size: 'big' is not a size HxW" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--channels", "2"])
