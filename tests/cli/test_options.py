"""`aekit train`'s options, generated from the configuration's fields, and how values reach the config."""

import argparse

import pytest

import aekit
from aekit.cli import build_parser, flag_message
from aekit.cli.options import config_from_args, flagged
from aekit.cli.reference import markdown
from aekit.configs import HERE as CONFIGS  # the shipped configs (not the checkout's link, a file on Windows)
from aekit.errors import AekitError


def config(*argv):
    return config_from_args(build_parser().parse_args(["train", *map(str, argv)]))


def test_flags_override_the_config_file():
    cfg = config("--config", CONFIGS / "reference.toml", "--model", "conv", "--epochs", "3",
                 "--batch-size", "25", "--lr", "0.002", "--code-length", "512", "--seed", "7", "--data", "olivetti",
                 "--device", "cpu", "--test-fraction", "0.25", "--data-home", "/tmp/x")
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr) == (3, 25, 0.002)
    assert cfg.model.code_length == 512 and cfg.seed == 7 and cfg.train.device == "cpu"
    assert cfg.data.test_fraction == 0.25 and cfg.data.data_home == "/tmp/x"
    # untouched values come from the file
    assert cfg.train.reference_loop is True and cfg.data.resize == "legacy-bicubic"


def test_noise_keeps_where_the_config_file_adds_it():
    cfg = config("--config", CONFIGS / "reference-denoising.toml", "--noise", "gaussian:0.3")
    assert (cfg.noise.kind, cfg.noise.sigma, cfg.noise.where) == ("gaussian", 0.3, "native")  # the book's order
    assert config("--noise", "gaussian:0.3").noise.where == "working"  # the default's


def test_data_options_reach_the_config():
    cfg = config("--data", "photos", "--size", "64x48", "--channels", "3", "--fit", "pad", "--layout", "nhwc",
                 "--rescale", "--skip-bad", "--stream", "off", "--workers", "2", "--code-length", "768")
    d = cfg.data
    assert d.size == (64, 48) and cfg.model.input_size == (64, 48)  # --size sets both
    assert (d.channels, d.fit, d.layout, d.rescale, d.skip_bad, d.stream, d.workers) == (3, "pad", "nhwc", True, True, "off", 2)
    untouched = config().data
    assert (untouched.channels, untouched.fit, untouched.rescale, untouched.skip_bad) == ("auto", "resize", False, False)


def test_training_and_model_options_reach_the_config():
    cfg = config("--amp", "bf16", "--compile", "--data-init", "--hflip", "--shift", "2", "--schedule", "cosine")
    t = cfg.train
    assert (t.amp, t.compile, t.data_init, t.hflip, t.shift, t.schedule) == ("bf16", True, True, True, 2, "cosine")
    assert (config().train.amp, config().train.compile, config().train.data_init) == ("auto", False, False)
    assert config("--no-compile").train.compile is False
    cfg = config("--model", "vae", "--loss", "mse", "--sparsity", "0.01", "--beta", "4")
    assert (cfg.model.name, cfg.model.loss, cfg.model.sparsity, cfg.model.beta) == ("vae", "mse", 0.01, 4.0)
    cfg = config("--noise", "gaussian:0.05-0.4", "--max-time", "2.5")
    assert cfg.noise.spec() == "gaussian:0.05-0.4" and cfg.train.max_minutes == 2.5


@pytest.mark.parametrize("argv, message", [
    (["--beta", "4"], r"model.beta: the conv model has no beta \(a setting of vae"),
    (["--split", "subjects"], r"data.split: 'subjects' is not one of 'random', 'subject' \(did you mean 'subject'\?\)"),
    (["--size", "big"], r"data.size: 'big' is not a size HxW"),
    (["--noise", "gauss:0.1"], r"unknown noise kind 'gauss' \(did you mean 'gaussian'\?\)"),
])
def test_bad_values_are_config_errors_naming_the_key(argv, message):
    with pytest.raises(aekit.ConfigError, match=message):
        config(*argv)


@pytest.mark.parametrize("argv, key, message", [
    (["--no-select", "--early-stop", "5"], "train.early_stop", "without model selection"),
    (["--val-fraction", "0.2", "--no-select"], "train.val_fraction", "without model selection"),
    (["--skip-bad"], "data.skip_bad", "applies to a folder of images, not olivetti"),
    (["--data", "lfw-subset", "--workers", "2"], "data.workers", "applies to a folder of images, not lfw-subset"),
    (["--data", "faces.npz", "--skip-bad"], "data.skip_bad", "applies to a folder of images, not faces.npz"),
    (["--layout", "nhwc"], "data.layout", "applies to an array"),
    (["--data", "{folder}", "--rescale"], "data.rescale", "applies to an array"),
    (["--model", "unet", "--size", "32x32", "--crop", "32"], "train.crop", "not below the working size 32x32"),
    (["--epochs", "3", "--warmup-epochs", "3"], "train.warmup_epochs", "not below the 3 epochs"),
])
def test_options_that_would_change_nothing_are_refused(tmp_path, argv, key, message):
    with pytest.raises(aekit.ConfigError, match=message) as e:
        config(*(a.format(folder=tmp_path) for a in argv))
    assert e.value.keys == (key,)


def test_options_that_act_in_their_combination_are_kept(tmp_path):
    assert config("--config", CONFIGS / "reference.toml", "--select", "--early-stop", "5").train.early_stop == 5
    assert config("--data", tmp_path, "--skip-bad", "--workers", "0").data.workers == 0
    assert config("--data", "x.npy", "--layout", "nchw", "--rescale").data.rescale is True
    assert config("--model", "unet", "--size", "32x32", "--crop", "16").train.crop == 16
    assert config("--epochs", "3", "--warmup-epochs", "2").train.warmup_epochs == 2


def test_every_flagged_field_is_an_option_with_its_help():
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for o in flagged():
        assert o.flag in text, o.key
    flat = " ".join(text.split())  # each architecture's own defaults beside the base's
    assert "(default: 600; vae 200)" in flat and "(default: the model's: conv 256, fcn 64, hybrid 64," in flat
    assert "--max-time MINUTES" in text and "{random,subject}" in text


def test_errors_show_the_flags_that_set_what_they_name():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", dest="train.batch_size")
    parser.add_argument("--tile")
    parser.add_argument("--config")
    e = AekitError("train.batch_size 50 is larger than the 12 images; lower train.batch_size", keys="train.batch_size")
    assert flag_message(e, parser) == "--batch-size 50 is larger than the 12 images; lower --batch-size"
    e = AekitError("tile 8 is too small (tile sizes: 16 or more)", keys=("tile", "overlap"))
    assert flag_message(e, parser) == "--tile 8 is too small (tile sizes: 16 or more)"  # plain names: the first use
    e = AekitError("config cannot change the run's config.toml", keys="config")
    assert flag_message(e, parser) == "--config cannot change the run's config.toml"
    assert flag_message(AekitError("train.batch_size"), parser) == "train.batch_size"  # no keys: as it is


def test_the_configuration_reference_in_docs_is_current(root):
    assert (root / "docs" / "configuration.md").read_text() == markdown(), \
        "regenerate it: python -m aekit.cli.reference > docs/configuration.md"
