"""train.init_from (--init-from): a run that starts from a trained model's weights, with its model, and says what it should."""

import shutil
import tomllib

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import aekit
from aekit.config import replace

SMALL = {"model.code_length": 32, "model.encoder_channels": [4], "model.encoder_strides": [2],
         "model.decoder_channels": [4], "model.decoder_strides": [2]}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """60 smooth synthetic 16x16 images in a .npy file."""
    path = tmp_path_factory.mktemp("data") / "images.npy"
    g = np.random.RandomState(0)
    yy, xx = np.meshgrid(np.linspace(0, 1, 16), np.linspace(0, 1, 16), indexing="ij")
    f, p = g.uniform(0.5, 3, (60, 2, 1, 1)), g.uniform(0, 6.28, (60, 1, 1))
    np.save(path, (0.5 + 0.4 * np.sin(f[:, 0] * 6.28 * xx + p) * np.cos(f[:, 1] * 6.28 * yy)).astype(np.float32))
    return path


def config(images, **more):
    return replace(aekit.Config(), **{"seed": 3, "data.source": str(images), "train.epochs": 2, "train.batch_size": 8,
                                      "train.threads": 1, "train.device": "cpu", "train.compare": False, **more})


@pytest.fixture(scope="module")
def trained(images, tmp_path_factory):
    """A small conv run (random split, a fifth held out)."""
    run = tmp_path_factory.mktemp("init") / "run"
    aekit.train(config(images, **SMALL, **{"data.size": "16x16"}), out=run, progress=False, log=lambda s: None)
    return run


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("model", ["conv", "hybrid"])
def test_the_start_is_the_trained_model_with_its_model_table(images, tmp_path, model):
    """With a learning rate of 0 the run ends with the trained weights, and its config.toml holds the trained model's
    [model] table, its working size and the folder; the hybrid's PCA start (a data-dependent start) is not made."""
    first = tmp_path / "first"
    settings = SMALL if model == "conv" else {"model.name": "hybrid", "model.code_length": 8}
    aekit.train(config(images, **settings, **{"data.size": "16x16"}), out=first, progress=False, log=lambda s: None)
    lines = []
    out = aekit.train(config(images, **{"train.init_from": str(first), "train.lr": 0.0, "data.test_fraction": 0.3}),
                      out=tmp_path / "tuned", progress=False, log=lines.append)
    assert f"Start: the weights of {first} (train.init_from), a {model} model" in lines
    assert not any(line.startswith("The start:") for line in lines)  # no data-dependent start
    a, b = weights(first), weights(out.out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    saved = tomllib.loads((out.out / "config.toml").read_text())
    assert saved["model"] == tomllib.loads((first / "config.toml").read_text())["model"]
    assert saved["train"]["init_from"] == str(first) and saved["data"]["size"] == [16, 16]
    # a run without it writes no init_from line: config.toml files of runs written before the option existed stay complete
    assert "init_from" not in tomllib.loads((first / "config.toml").read_text())["train"]


def test_fine_tuning_trains_on_from_the_start_and_resumes_without_the_trained_folder(images, trained, tmp_path):
    """The start is model selection's first candidate; a resume reads the run's own checkpoint, never the folder."""
    init = tmp_path / "init"
    shutil.copytree(trained, init)
    lines = []
    run = tmp_path / "tuned"
    aekit.train(config(images, **{"train.init_from": str(init), "train.lr": 3e-3, "train.checkpoint_seconds": 0}), out=run,
                progress=False, log=lines.append)
    start = next(line for line in lines if line.startswith("Model selection on"))
    assert "the start scores" in start
    said = f"the weights of {init} (train.init_from)"  # in metrics.json and the report, beside the start's figure
    assert aekit.RunFolder(run).metrics()["selection"]["start_setup"] == said
    assert said in (run / "report.html").read_text()
    shutil.rmtree(init)
    cfg = replace(aekit.load_config(run / "config.toml"), **{"train.epochs": 3})
    result = aekit.train(cfg, out=run, resume=True, progress=False, log=lambda s: None)
    assert [e.epoch for e in result.history] == [1, 2, 3]


def test_a_model_folder_written_by_aekit_save_is_a_start_too(images, trained, tmp_path):
    """Not a run: no config.toml to compare splits or noise with, so no notes; the start is its weights."""
    saved = tmp_path / "saved"
    aekit.save(aekit.load(trained), saved, preprocess={"size": [16, 16], "channels": 1})
    lines = []
    out = aekit.train(config(images, **{"train.init_from": str(saved), "train.lr": 0.0}), out=tmp_path / "run",
                      progress=False, log=lines.append)
    assert f"Start: the weights of {saved} (train.init_from), a conv model" in lines
    assert not [line for line in lines if line.startswith("note:")]
    a, b = weights(trained), weights(out.out)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_held_out_images_the_trained_run_saw_are_said(images, trained, tmp_path):
    lines = []
    aekit.train(config(images, **{"train.init_from": str(trained), "data.test_fraction": 0.4}), out=tmp_path / "a",
                progress=False, log=lines.append)
    seen = [line for line in lines if "held-out images were training images of" in line]
    assert seen == [f"note: 12 of the 24 held-out images were training images of {trained} (train.init_from): the held-out "
                    "figures are not of unseen images (give data.split random and data.test_fraction 0.2, as it had)"]
    lines.clear()  # the trained run's own split: its held-out images are this run's, unseen by both
    aekit.train(config(images, **{"train.init_from": str(trained)}), out=tmp_path / "b", progress=False, log=lines.append)
    assert not [line for line in lines if line.startswith("note:")]
    lines.clear()  # another order: another split
    aekit.train(config(images, **{"train.init_from": str(trained), "data.order_seed": 5}), out=tmp_path / "c",
                progress=False, log=lines.append)
    assert any(line.startswith(f"note: {trained} (train.init_from) split the same images with data.order_seed 1000")
               for line in lines)


def test_a_denoisers_noise_is_not_dropped_silently(images, tmp_path):
    denoiser = tmp_path / "denoiser"
    aekit.train(config(images, **SMALL, **{"data.size": "16x16", "noise": "gaussian:0.1", "train.epochs": 1}),
                out=denoiser, progress=False, log=lambda s: None)
    lines = []
    aekit.train(config(images, **{"train.init_from": str(denoiser), "train.epochs": 1}), out=tmp_path / "plain",
                progress=False, log=lines.append)
    assert (f"note: {denoiser} (train.init_from) was trained to denoise (noise gaussian:0.1), and this run adds no noise: it "
            "trains the model to reconstruct clean images (give noise gaussian:0.1, --noise on the command line, to "
            "fine-tune the denoiser)") in lines


def test_choices_the_trained_model_contradicts_are_one_line_errors(images, trained, tmp_path, cli):
    common = ("train", "--data", images, "--init-from", trained, "--out", tmp_path / "x", "--epochs", "1")
    for extra, why in [
        (("--model", "conv", "--code-length", "256"),  # the default code length, given: a choice all the same
         "its model has --code-length 32, not 256: the model is the trained one's (leave --code-length out)"),
        (("--model", "unet"), "its model has --model conv, not unet: the model is the trained one's (leave --model out)"),
        (("--channels", "3"), "its model takes 1-channel images, not --channels 3 (leave --channels auto)"),
        (("--size", "32x32"), "its conv model works at 16x16 only, not --size 32x32 (leave --size out)"),
    ]:
        assert cli(*common, *extra).error == f"aekit: error: --init-from {trained}: {why}"
    assert cli(*common, "--data-init").error == ("aekit: error: --data-init recalibrates the start, and with --init-from the "
                                                 "start is the trained weights: give one of them")
    assert cli(*common[:3], "--init-from", tmp_path / "none", "--out", tmp_path / "y").error == (
        f"aekit: error: --init-from {tmp_path / 'none'}: no such run or model folder")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # a value away from its architecture's default, in a config (the Python API): the same refusal
    with pytest.raises(aekit.AekitError, match="its model has model.code_length 32, not 64"):
        aekit.train(config(images, **{"model.code_length": 64, "train.init_from": str(trained)}),
                    out=tmp_path / "z", progress=False, log=lambda s: None)


def test_options_of_the_trained_architecture_apply_without_naming_it(images, tmp_path, cli):
    """--crop needs a model for any size: with --init-from a unet, the command line builds its options for a unet."""
    unet = tmp_path / "unet"
    aekit.train(config(images, **{"model.name": "unet", "model.channels": 4, "model.code_length": 32,
                                  "train.epochs": 1}), out=unet, progress=False, log=lambda s: None)
    r = cli("train", "--data", images, "--init-from", unet, "--crop", "8", "--epochs", "1", "--no-compare",
            "--threads", "1", "--device", "cpu", "--no-progress", "--out", tmp_path / "tuned")
    assert r.code == 0, r.err
    assert tomllib.loads((tmp_path / "tuned" / "config.toml").read_text())["train"]["crop"] == 8


def test_a_model_json_that_does_not_match_its_weights_is_refused_before_the_model_is_built(trained, tmp_path, cli,
                                                                                        monkeypatch):
    """The trained model was built (its weights allocated: gigabytes for a hand-edited width) before its weights were
    compared with it."""
    import json

    import aekit.run

    folder = tmp_path / "edited"
    shutil.copytree(trained, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["config"]["encoder_channels"] = [65536]
    (folder / "model.json").write_text(json.dumps(meta))
    monkeypatch.setattr(aekit.run, "create_model", lambda *a, **k: pytest.fail("the model was built"))
    assert cli("train", "--data", trained / "none.npy", "--init-from", folder, "--out", tmp_path / "x").error == (
        f"aekit: error: --init-from {folder / 'model.safetensors'}: the weights do not match model.json (encoder.0.conv."
        "weight has shape (4, 1, 3, 3), the model's (65536, 1, 3, 3); 3 differences): the two files are of different "
        "models; restore them from one save")
    assert not (tmp_path / "x").exists()
