"""A run end to end: the reference run folder, held-out metrics, your own images, and bad input."""

import json
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.configs import HERE as CONFIGS  # the shipped configs (not the checkout's link, a file on Windows)
from helpers import aekit_process, make_folder, one_line_error, opened, truncate

RUN_FILES = ["config.toml", "model.json", "model.safetensors", "history.csv", "metrics.json",
             "reconstructions.png", "loss.png", "code_histogram.png", "report.html"]

TINY = """
[model]
name = "conv"
encoder_channels = [8]
encoder_strides = [2]
decoder_channels = [8]
decoder_strides = [2]
"""


@pytest.mark.slow
def test_reference_run_end_to_end(tmp_path):
    """Two epochs of experiment A on the real faces: every run-folder file, the reference's line format,
    and an epoch-1 loss in the reference's range."""
    out = tmp_path / "run"
    r = aekit_process("train", "--config", CONFIGS / "reference.toml", "--epochs", "2", "--out", out,
                      "--no-progress")
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
    assert model["preprocess"] == {"size": [32, 32], "resize": "legacy-bicubic", "channels": 1, "fit": "resize",
                                   "crop": 0}
    # the saved config reproduces the run
    cfg = aekit.load_config(out / "config.toml")
    assert cfg.train.epochs == 2 and cfg.train.reference_loop and cfg.seed == 1002


def test_heldout_metrics_reported_beside_training(tmp_path, cli):
    out = tmp_path / "run"
    r = cli("train", "--epochs", "1", "--eval-every", "1", "--out", out, "--no-progress", "--seed", "5",
            "--batch-size", "64", "--code-length", "256")
    assert r.code == 0, r.err
    assert "Held-out (80 images)" in r.out
    metrics = json.loads((out / "metrics.json").read_text())
    selection = metrics["selection"]  # whole people of the 320 training faces, held out for model selection
    assert metrics["train"]["images"] + selection["validation_images"] == 320 and metrics["heldout"]["images"] == 80
    assert selection["how"].startswith("whole labels") and selection["chosen_epoch"] in (0, 1)
    for key in ("loss_per_sample", "psnr", "ssim", "mse", "code_mean"):
        assert key in metrics["train"] and key in metrics["heldout"]
    row = (out / "history.csv").read_text().splitlines()[1].split(",")
    assert all(v != "" for v in row)  # held-out columns filled at the last epoch


def test_existing_out_is_refused_without_overwrite(tmp_path, cli):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    err = cli("train", "--epochs", "1", "--out", out).error
    assert "not empty" in err and "--overwrite" in err and err.startswith(f"aekit: error: --out {out}")
    # --overwrite still refuses to delete a folder that is not an aekit run
    err = cli("train", "--epochs", "1", "--out", out, "--overwrite").error
    assert "not an aekit run folder" in err
    assert (out / "precious.txt").read_text() == "keep me"
    # nor one that merely holds a config.toml among other things (a project folder), or the data to train on
    (out / "config.toml").write_text("[train]\nepochs = 1\n")
    err = cli("train", "--config", out / "config.toml", "--out", out, "--overwrite").error
    assert err == (f"aekit: error: --out {out}: holds precious.txt, which no aekit run writes (your files, or the "
                   "data?); refusing to delete it, even with --overwrite")
    (out / "precious.txt").unlink()
    make_folder(out / "images", 12, size=(16, 16))
    err = cli("train", "--data", out / "images", "--out", out, "--overwrite").error
    assert "holds the folder images/, which no aekit run writes" in err and len(list((out / "images").rglob("*.png"))) == 12



def test_overwrite_keeps_the_old_run_until_the_new_one_is_complete(tmp_path, cli):
    """The old run waits beside the folder: a new run that fails before its first checkpoint puts it back, one
    that completes removes it."""
    make_folder(tmp_path / "photos", 12, size=(16, 16), subfolders=())
    args = ["train", "--data", tmp_path / "photos", "--size", "16x16", "--no-compare", "--no-progress",
            "--out", tmp_path / "run", "--overwrite"]
    assert cli(*args, "--epochs", "1").code == 0
    old = (tmp_path / "run" / "model.safetensors").read_bytes()
    err = cli(*args, "--epochs", "3", "--lr", "1e12").error  # diverges in its first epoch
    assert err.endswith(f"lower --lr ({tmp_path / 'run'} holds the run it was to replace again)"), err
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == old and (tmp_path / "run" / "metrics.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "run"]
    assert cli(*args, "--epochs", "2", "--seed", "5").code == 0
    assert (tmp_path / "run" / "model.safetensors").read_bytes() != old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "run"]  # the old run is gone once this one is complete


def test_rgb_folder_train_evaluate_and_reconstruct_files(tmp_path, cli):
    """train (streaming, with --skip-bad) -> load -> evaluate -> reconstruct a file back to its own format,
    through the Python API and then through `aekit evaluate` and `aekit denoise`."""
    root = make_folder(tmp_path / "pets", 16, size=(20, 28))
    truncate(root / "cats" / "img-04.png")
    (root / "dogs" / "notes.png").write_text("not an image")
    (tmp_path / "tiny.toml").write_text(TINY)
    out = tmp_path / "run"
    r = cli("train", "--config", tmp_path / "tiny.toml", "--data", root, "--size", "16x16", "--code-length", "64",
            "--epochs", "2", "--batch-size", "4", "--eval-every", "1", "--stream", "on", "--workers", "2",
            "--skip-bad", "--split", "subject", "--out", out, "--no-progress", "--tensorboard")
    assert r.code == 0, r.err
    assert "Skipped 2 unreadable image files" in r.out and any((out / "tensorboard").iterdir())
    skipped = (out / "skipped.txt").read_text().splitlines()
    assert sorted(line.split(":")[0].rsplit("/", 1)[-1] for line in skipped) == ["img-04.png", "notes.png"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete"
    assert metrics["heldout"]["images"] == 8  # subject split: "dogs" held out
    assert metrics["train"]["images"] == 6 and metrics["selection"]["validation_images"] == 1  # one label: random
    meta = json.loads((out / "model.json").read_text())
    assert meta["preprocess"] == {"size": [16, 16], "resize": "bicubic", "channels": 3, "fit": "resize", "crop": 0}
    assert opened(out / "reconstructions.png").mode == "RGB"

    model = aekit.load(out)
    cfg = aekit.load_config(out / "config.toml")
    assert cfg.model.in_channels == 3 and cfg.data.channels == "auto"
    data = aekit.load_from_config(cfg.data, size=tuple(meta["preprocess"]["size"]))
    scores = aekit.evaluate(model, data.images)
    assert set(scores) == {"loss_per_sample", "code_mean", "code_small", "mse", "psnr", "ssim", "recon_spread"} and scores["psnr"] > 5

    source = root / "dogs" / "img-01.png"
    pixels, info = aekit.read_image(source)
    x = aekit.load_image(source, size=(16, 16), channels=3)
    with torch.no_grad():
        recon = model(x[None]).recon[0]
    aekit.write_image(tmp_path / "clean.png", recon.permute(1, 2, 0).numpy(), like=info)
    with Image.open(tmp_path / "clean.png") as a, Image.open(source) as b:
        assert (a.format, a.mode, a.size) == (b.format, b.mode, b.size) == ("PNG", "RGB", (28, 20))

    # the same run through the commands: evaluate (held-out people, beside baselines) and denoise files
    assert cli("evaluate", out, "--noise", "gaussian:0.1", "--baselines", "blur,pca").code == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["split"] == "subject" and report["images"] == 8 and report["seen_in_training"] == 0
    assert [r["method"] for r in report["results"]] == ["noisy input", "aekit (conv)", "blur", "pca"]
    assert opened(out / "evaluation.png").mode == "RGB"
    r = cli("denoise", out, root / "dogs", "--out", tmp_path / "clean", "--add-noise", "gaussian:0.1")
    assert r.code == 2 and "notes.png: not an image" in r.err and r.err.rstrip().endswith("(--skip-bad skips unreadable files)")
    assert not (tmp_path / "clean").exists()
    r = cli("denoise", out, root / "dogs", "--out", tmp_path / "clean", "--add-noise", "gaussian:0.1", "--skip-bad")
    assert r.code == 0 and "skipped 1 unreadable files" in r.out
    written = sorted(p.name for p in (tmp_path / "clean").iterdir())
    assert "grid.png" in written and "img-01.png" in written
    r = cli("export", out, "--out", tmp_path / "model.pt")  # checked on the streamed run's own images
    assert r.code == 0 and "8 held-out images of" in r.out, r.err
    with Image.open(tmp_path / "clean" / "img-01.png") as a:
        assert (a.format, a.mode, a.size) == ("PNG", "RGB", (28, 20))


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
        (lambda p: _folder(p, "garbage"), [], r"img-03\.png: not an image .*\(--skip-bad skips unreadable files\)"),
        (lambda p: _folder(p, "truncated"), [], r"img-03\.png: cannot decode the image .*--skip-bad"),
        (lambda p: _folder(p, "ok"), ["--fit", "crop", "--size", "32x48", "--code-length", "384"],
         r"img-0\d\.png: 24x24 is smaller than the working size 32x48, which --fit crop cannot fill without "
         r"enlarging \(use --fit pad or resize, or a smaller --size\)"),
        (lambda p: _folder(p, "ok"), ["--split", "subject"], "--split 'subject' needs labels"),
        (lambda p: _array(p, "x.npy", np.zeros((6, 8, 8))), ["--split", "subject"], "an array: a .npz with 'images' and"),
        (lambda p: _text(p, "t.npy"), [], r"t\.npy: not a readable \.npy array \(not a NumPy file, or one holding Python"),
        (lambda p: str(p / "nowhere"), [], r"^aekit: error: --data '.*nowhere': unknown data source"),
        (lambda p: _array(p, "r.npy", np.zeros((4, 4))), [], r"r\.npy: shape \(4, 4\): expected"),
        (lambda p: _array(p, "a.npy", np.zeros((6, 3, 8, 3))), [], r"a\.npy: shape \(6, 3, 8, 3\) is ambiguous"),
        (lambda p: _array(p, "n.npy", np.full((6, 8, 8), np.nan)), [], r"n\.npy: NaN or Inf at index \(0, 0, 0\)"),
        (lambda p: _array(p, "f.npy", np.full((6, 8, 8), 2.0)), [], r"f\.npy: float values lie in \[2, 2\], outside \[0, 1\]"),
        (lambda p: _array(p, "z.npy", np.zeros((0, 8, 8))), [], r"z\.npy: holds zero images"),
        (lambda p: "olivetti", ["--stream", "on"], "only folders stream"),
        (lambda p: "olivetti", ["--workers", "-1"], "--workers must be 0 or more"),
        (lambda p: "olivetti", ["--size", "33x33"], "--size 33x33 is not divisible by the encoder's total stride 2"),
        (lambda p: "olivetti", ["--noise", "gaussian-map:nope.npy"], "noise map nope.npy: file not found"),
    ],
)
def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path, cli, make, options, message):
    source = make(tmp_path)
    out = tmp_path / "run"
    err = cli("train", "--data", source, *options, "--epochs", "1", "--out", out, "--no-progress").error
    assert re.search(message, err), err
    assert not out.exists()


def _text(p, name):
    (p / name).write_text("not an array")
    return p / name


def test_a_noise_map_of_another_size_is_refused_before_the_run_folder_is_made(tmp_path, cli):
    sigma = _array(tmp_path, "map.npy", np.full((64, 64), 0.1, dtype=np.float32))  # native size; noise goes at 32x32
    err = cli("train", "--noise", f"gaussian-map:{sigma}", "--epochs", "1", "--out", tmp_path / "run").error
    assert err.endswith("map.npy: shape (64, 64) does not match images of 1 x 32 x 32 (C x H x W, where the noise is "
                        "added)"), err
    assert not (tmp_path / "run").exists()


def test_unwritable_out_is_a_one_line_error(tmp_path, cli):
    (tmp_path / "file").write_text("a file, not a folder")
    err = cli("train", "--data", _folder(tmp_path, "ok"), "--config", _tiny(tmp_path), "--epochs", "1",
              "--batch-size", "2", "--out", tmp_path / "file" / "run", "--no-progress").error
    assert "cannot write there" in err


def _tiny(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    return tmp_path / "tiny.toml"


@pytest.mark.slow
def test_bad_data_from_the_command_line_exits_2_without_a_traceback(tmp_path):
    bad = _array(tmp_path, "n.npy", np.full((6, 8, 8), np.nan))
    r = aekit_process("train", "--data", bad, "--out", tmp_path / "r", timeout=300)
    assert one_line_error(r) == f"aekit: error: {bad}: NaN or Inf at index (0, 0, 0) (image 0)"
    r = aekit_process("train", "--size", "big", timeout=300)
    assert one_line_error(r) == "aekit: error: --size: 'big' is not a size HxW (e.g. 64x64, or 64)"


def test_a_twelve_image_folder_trains_with_the_default_settings(tmp_path, cli):
    root = make_folder(tmp_path / "small", 12, size=(40, 36))
    r = cli("train", "--data", root, "--epochs", "1", "--out", tmp_path / "run", "--no-progress")
    assert r.code == 0, r.err
    assert "is larger than the" in r.out and "each step takes all" in r.out
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "complete"


def test_train_leaves_the_callers_generator_and_thread_count_as_they_were(tmp_path):
    """aekit.train seeded torch's global generator with the run's seed: whatever the caller had seeded, torch.rand
    gave the same numbers after it; train.threads stayed the process's thread count."""
    np.save(tmp_path / "x.npy", torch.rand(12, 1, 8, 8).numpy())
    tables = {"data": {"source": str(tmp_path / "x.npy"), "size": [8, 8]}, "model": {"name": "fcn", "channels": [4]},
              "train": {"epochs": 1, "compare": False, "threads": 1}}
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    aekit.train(tables, out=tmp_path / "run", progress=False, log=lambda s: None)
    assert torch.equal(torch.rand(3), want) and torch.get_num_threads() == threads
    torch.manual_seed(7)  # and the run itself is the same whatever the caller's generator
    again = aekit.train(tables, out=tmp_path / "again", progress=False, log=lambda s: None)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == (tmp_path / "again" / "model.safetensors").read_bytes()
    assert again.history[-1].loss_per_sample > 0


def test_train_takes_the_tables_as_a_dict_or_a_toml_file_and_load_data_a_tensor(tmp_path):
    images = torch.rand(12, 1, 8, 8)
    assert aekit.load_data(images).images.shape == (12, 1, 8, 8)  # a tensor is an array
    np.save(tmp_path / "x.npy", images.numpy())
    tables = {"data": {"source": str(tmp_path / "x.npy"), "size": [8, 8]}, "model": {"name": "fcn", "channels": [4]},
              "train": {"epochs": 1, "compare": False}}
    result = aekit.train(tables, out=tmp_path / "a", progress=False, log=lambda s: None)
    (tmp_path / "c.toml").write_text(aekit.dump_config(aekit.load_config(result.out / "config.toml")))
    again = aekit.train(tmp_path / "c.toml", out=tmp_path / "b", progress=False, log=lambda s: None)
    assert again.metrics["train"]["psnr"] == result.metrics["train"]["psnr"]  # the same run, from its file
    with pytest.raises(aekit.ConfigError, match="cfg: expected an aekit.Config, a dict of its tables or a TOML file"):
        aekit.train(3)
    with pytest.raises(aekit.DataError, match="data.source: expected 'olivetti', 'lfw-subset', .* got list"):
        aekit.load_data([images])
    with pytest.raises(aekit.AekitError, match="model.safetensors: is a file; give the run or model folder"):
        aekit.load(result.out / "model.safetensors")


def test_without_a_test_split_the_summary_names_the_validation_images_it_chose_on(tmp_path, cli):
    root = make_folder(tmp_path / "small", 12, size=(24, 24))
    r = cli("train", "--data", root, "--test-fraction", "0", "--epochs", "1", "--out", tmp_path / "run", "--no-progress")
    assert r.code == 0, r.err
    s = json.loads((tmp_path / "run" / "metrics.json").read_text())["selection"]
    chosen = f"epoch {s['chosen_epoch']}" if s["chosen_epoch"] else "the start"
    assert (f"Held-out: none (test_fraction = 0: no test split); {chosen} was chosen on {s['validation_images']} "
            f"validation images carved from the training images ({s['how']}), not trained on" in r.out)
    assert s["validation_images"] > 0
    r = cli("train", "--data", root, "--test-fraction", "0", "--epochs", "1", "--no-select", "--out", tmp_path / "all",
            "--no-progress")
    assert r.code == 0, r.err
    assert "Held-out: none (test_fraction = 0: every image was used for training, as in the reference)" in r.out


def test_an_array_whose_rows_were_reordered_is_not_the_data_the_run_trained_on(tmp_path, cli):
    """An array's image names are its row numbers: rows reordered (or relabelled) kept the names and silently gave
    another split, so that 61 of 80 'held-out' images had been trained on. Old runs' data.json (no pixel digest) pass."""
    import numpy as np

    x = np.random.default_rng(0).random((30, 16, 16), dtype=np.float32)
    np.save(tmp_path / "a.npy", x)
    run = tmp_path / "run"
    assert cli("train", "--data", tmp_path / "a.npy", "--epochs", "1", "--no-compare", "--no-progress", "--out",
               run).code == 0
    np.save(tmp_path / "a.npy", x[::-1].copy())
    for args in (["evaluate", run], ["train", "--resume", run, "--epochs", "2"]):
        err = cli(*args).error
        assert f"aekit: error: {run}: the data changed since the run was trained ({tmp_path / 'a.npy'}: 30 images " \
               "now, 30 then, other pixels, labels or order)" in err, err
    record = json.loads((run / "data.json").read_text())
    del record["pixels_sha256"]  # a run from before the pixel digest
    (run / "data.json").write_text(json.dumps(record))
    assert cli("evaluate", run).code == 0

def test_a_run_reads_its_data_from_anywhere_and_notices_when_the_data_changed(tmp_path, cli, monkeypatch):
    """config.toml keeps the folder's absolute path (given relative); files added since training would change
    the splits, so evaluate and resume refuse; evaluate --data on the run's own folder says what it trained on."""
    from helpers import make_folder

    make_folder(tmp_path / "photos", 12, size=(16, 16), subfolders=())
    monkeypatch.chdir(tmp_path)
    r = cli("train", "--data", "photos", "--size", "16x16", "--epochs", "1", "--no-compare", "--no-progress",
            "--out", "run")
    assert r.code == 0, r.err
    run = tmp_path / "run"
    assert aekit.load_config(run / "config.toml").data.source == str(tmp_path / "photos")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    r = cli("evaluate", run)
    assert r.code == 0, r.err
    held_out = json.loads((run / "evaluation.json").read_text())["images"]
    r = cli("evaluate", run, "--data", tmp_path / "photos")
    assert r.code == 0 and f"WARNING: the model saw {12 - held_out} of them in training" in r.out, r.out
    shutil.copytree(tmp_path / "photos", tmp_path / "copy")  # a copy elsewhere: the same images, known by their pixels
    r = cli("evaluate", run, "--data", tmp_path / "copy")
    assert r.code == 0 and f"WARNING: the model saw {12 - held_out} of them in training" in r.out, r.out
    make_folder(tmp_path / "photos" / "new", 2, size=(16, 16), subfolders=())
    for args in (["evaluate", run], ["train", "--resume", run, "--epochs", "2"]):
        err = cli(*args).error
        assert f"aekit: error: {run}: the data changed since the run was trained ({tmp_path / 'photos'}: 14 images " \
               "now, 12 then, or other names)" in err, err
    config = run / "config.toml"  # a run from before absolute paths, read from another folder: the run's error
    config.write_text(config.read_text().replace(f'"{tmp_path / "photos"}"', '"photos"'))
    for args in (["evaluate", run], ["train", "--resume", run, "--epochs", "2"]):
        assert cli(*args).error.startswith(f"aekit: error: {run}: the data it was trained on, 'photos' (config.toml "
                                           "[data] source), is not there (a relative path is read from the current")


def test_a_run_that_fails_in_training_says_how_to_run_the_corrected_command(tmp_path, cli):
    """A diverged loss leaves the run's folder (config, checkpoints): the error says the fix needs --overwrite."""
    from helpers import make_folder

    make_folder(tmp_path / "photos", 12, size=(16, 16), subfolders=())
    args = ["train", "--data", tmp_path / "photos", "--size", "16x16", "--epochs", "3", "--no-compare", "--no-progress",
            "--out", tmp_path / "run"]
    err = cli(*args, "--lr", "1e12").error
    assert "the loss is nan; lower --lr (then run again with --overwrite: " in err, err
    assert cli(*args, "--overwrite").code == 0
