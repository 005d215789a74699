"""Configuration: the reference configs, TOML round trips, overrides, and errors naming the file and key."""

from pathlib import Path

import pytest

import aekit
from aekit.config import Config, config_options, replace, resumable_keys
from aekit.config_file import dump_config, load_config
from aekit.configs import HERE as CONFIGS  # the shipped configs (not the checkout's link, a file on Windows)
from aekit.errors import did_you_mean


def test_reference_config_is_experiment_a():
    cfg = load_config(CONFIGS / "reference.toml")
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr) == (600, 50, 0.001)
    assert cfg.train.reference_loop is True
    assert cfg.model.name == "conv" and cfg.model.code_length == 256 and cfg.model.loss == "l2"
    assert cfg.data.resize == "legacy-bicubic" and cfg.data.test_fraction == 0.0
    assert cfg.seed == 1002 and cfg.data.order_seed == 1000


@pytest.mark.parametrize("name", ["reference", "reference-denoising", "reference-sparse", "reference-vae"])
def test_the_reference_configs_train_as_the_book_does(name):
    """No flips, no validation split, float32: none of the defaults' choices reach the book's runs."""
    t = load_config(CONFIGS / f"{name}.toml").train
    assert (t.hflip, t.select, t.amp, t.shift, t.rotate, t.zoom, t.intensity, t.ema) == (False, False, "off", 0, 0, 0, 0, 0)


def test_a_shipped_config_is_read_by_name_from_anywhere(tmp_path, monkeypatch):
    """--config reference works from an installed package (a wheel has no configs/ folder beside it)."""
    monkeypatch.chdir(tmp_path)
    assert load_config("reference") == load_config("reference.toml") == load_config(CONFIGS / "reference.toml")
    (tmp_path / "reference.toml").write_text("seed = 7\n")  # a file of that very name comes first
    assert load_config("reference.toml").seed == 7 and load_config("reference").seed == 1002
    with pytest.raises(aekit.AekitError, match=r"^referense: config file not found; the configs aekit ships: fast, "
                                                r"reference, .*\(did you mean 'reference'\?\)$"):
        load_config("referense")
    with pytest.raises(aekit.AekitError, match=r"^sub/reference\.toml: config file not found$"):
        load_config("sub/reference.toml")


def test_the_shipped_configs_are_package_data(root):
    """pyproject.toml installs them with the package: the checkout's configs/ is a link to them (a text file naming
    them in a clone without symbolic links, as git makes on Windows without them; nothing else reads it)."""
    import tomllib

    from aekit import configs

    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["aekit"]
    assert data == ["configs/*.toml"] and configs.HERE.parent == Path(aekit.__file__).parent
    link = root / "configs"
    assert link.resolve() == configs.HERE.resolve() or link.read_text() == "src/aekit/configs"
    assert configs.names() == ["fast", "reference", "reference-denoising", "reference-sparse", "reference-vae"]


def test_fast_config_changes_only_the_schedule_of_the_reference():
    """benchmarks/time_to_quality.py compares the two: same data, architecture and loss, same Adam."""
    ref = load_config(CONFIGS / "reference.toml")
    fast = load_config(CONFIGS / "fast.toml")
    assert fast.data == ref.data and fast.model == ref.model and fast.noise == ref.noise
    assert (fast.train.beta1, fast.train.beta2, fast.train.eps) == (ref.train.beta1, ref.train.beta2, ref.train.eps)
    assert fast.train.data_init and not ref.train.data_init
    assert fast.train.hflip is False and fast.train.select is False


def test_defaults_hold_out_a_fifth_and_use_the_plain_loop():
    cfg = Config()
    assert cfg.data.test_fraction == 0.2 and cfg.train.reference_loop is False


def test_dump_and_load_round_trip(tmp_path):
    cfg = load_config(CONFIGS / "reference.toml")
    path = tmp_path / "c.toml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


def test_overrides():
    cfg = replace(Config(), seed=3, **{"train.epochs": 7, "model.code_length": 512, "data.test_fraction": 0.1})
    assert (cfg.seed, cfg.train.epochs, cfg.model.code_length, cfg.data.test_fraction) == (3, 7, 512, 0.1)


def test_a_model_brings_its_training_defaults_unless_they_are_set(tmp_path):
    """unet trains with batch 16, lr 1e-3 and a cosine schedule, the VAE for at most 200 epochs with a
    patience of 50; a config file or an override still wins, and switching back restores the defaults."""
    unet = replace(Config(), **{"model.name": "unet"})
    assert (unet.train.batch_size, unet.train.lr, unet.train.schedule) == (16, 1e-3, "cosine")
    assert replace(Config(), **{"model.name": "unet", "train.batch_size": 8}).train.batch_size == 8
    vae = replace(Config(), **{"model.name": "vae"})
    assert (vae.train.epochs, vae.train.early_stop, vae.train.hflip) == (200, 50, False)
    assert replace(vae, **{"model.name": "conv"}).train.epochs == Config().train.epochs
    path = tmp_path / "v.toml"
    path.write_text('[model]\nname = "vae"\n[train]\nepochs = 30\n')
    assert (load_config(path).train.epochs, load_config(path).train.early_stop) == (30, 50)


def test_a_size_is_a_list_or_the_text_its_flag_takes(tmp_path):
    for text in ("[32, 48]", "'32x48'"):
        (tmp_path / "c.toml").write_text(f"[data]\nsize = {text}\n")
        assert load_config(tmp_path / "c.toml").data.size == (32, 48)


def test_a_noise_spec_replaces_the_noise_where_the_config_adds_it():
    cfg = replace(Config(), noise="gaussian:0.2")  # a SPEC, as --noise takes it
    assert (cfg.noise.kind, cfg.noise.sigma, cfg.noise.where) == ("gaussian", 0.2, "working")
    book = replace(load_config(CONFIGS / "reference-denoising.toml"), noise="gaussian:0.3")
    assert (book.noise.sigma, book.noise.where) == (0.3, "native")  # the book's order stays
    with pytest.raises(aekit.ConfigError, match="unknown noise kind 'gauss'"):
        replace(Config(), noise="gauss:1")


def test_data_size_sets_the_models_input_size_too_as_size_does(tmp_path):
    """[data] size alone (a file, a dict, an override) is the working size and the model's input size."""
    (tmp_path / "c.toml").write_text("[data]\nsize = '16x16'\n")
    assert load_config(tmp_path / "c.toml").model.input_size == (16, 16)
    assert Config.from_dict({"data": {"size": [24, 16]}}).model.input_size == (24, 16)
    assert replace(Config(), **{"data.size": (16, 16)}).model.input_size == (16, 16)
    assert replace(Config(), **{"data.size": "8x8", "model.name": "unet"}).model.input_size == (8, 8)
    (tmp_path / "c.toml").write_text("[data]\nsize = [16, 16]\n[model]\ninput_size = [32, 32]\n")
    with pytest.raises(aekit.ConfigError, match=r"differs from model.input_size 32x32: give both the same size"):
        aekit.config.working_size(load_config(tmp_path / "c.toml"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("[train]\nepochz = 3\n", r"\[train\]: unknown key 'epochz' \(did you mean 'epochs'\?\)"),
        ("[trian]\nepochs = 3\n", r"unknown key 'trian' \(did you mean 'train'\?\) \(known: name, seed, \[data\], \[model\]"),
        ("[train]\nepochs = 'many'\n", r"train\]\.epochs: expected an integer"),
        ("[train]\nepochs = -1\n", r"train\.epochs must be at least 1"),
        ("[train]\nshift = -2\n", r"train\.shift must be 0 or more pixels, got -2"),
        ("[train]\nema = 1.5\n", r"train\.ema must lie in \[0, 1\) \(e\.g\. 0\.999; 0: off\), got 1\.5"),
        ("[train]\nrotate = -5\n", r"train\.rotate must lie in \[0, 180\] degrees, got -5"),
        ("[train]\nzoom = 2\n", r"train\.zoom must lie in \[0, 1\), got 2"),
        ("[train]\nsynthetic = 1.0\n", r"train\.synthetic must lie in \[0, 1\), got 1\.0"),
        ("[train]\ncrop = 16\n", r"train\.crop needs a model for any size \(fcn, unet\), not conv"),
        ("[model]\nname = 'unet'\n[train]\ncrop = -1\n", r"train\.crop must be 0 or more pixels, got -1"),
        ("[train]\namp = 'fp8'\n", r"\[train\]\.amp: 'fp8' is not one of 'auto', 'off', 'bf16', 'fp16'"),
        ("[model]\nname = 'conv'\ncode_length = 100\ndecoder_input = 'reshape'\n", "code_length 100 does not fit"),
        ("[model]\nname = 'transformer'\n", "unknown model 'transformer'"),
        ("[model]\nname = 'hybird'\n", r"unknown model 'hybird' \(did you mean 'hybrid'\?\)"),
        ("[data]\nresize = 'lanczos9'\n", "'lanczos9' is not one of"),
        ("[data]\nfit = 'squash'\n", r"data\]\.fit: 'squash' is not one of 'resize', 'crop', 'pad'"),
        ("[data]\nsplit = 'subjects'\n", r"'subjects' is not one of 'random', 'subject' \(did you mean 'subject'\?\)"),
        ("[data]\nchannels = 2\n", r"data\]\.channels: 2 is not one of 'auto', 1, 3"),
        ("[data]\nchannels = true\n", r"data\]\.channels: True is not one of 'auto', 1, 3"),
        ("[data]\nworkers = -2\n", r"data\.workers must be 0 or more"),
        ("[data]\nskip_bad = 'yes'\n", r"data\]\.skip_bad: expected true or false"),
        ("[data]\nstreaming = true\n", r"\[data\]: unknown key 'streaming' \(did you mean 'stream'\?\)"),
        ("name = [1\n", "not valid TOML"),
        ("[data]\nsize = '32by32'\n", r"\[data\]\.size: '32by32' is not a size HxW \(e\.g\. 64x64, or 64\)"),
    ],
)
def test_bad_config_files_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(aekit.ConfigError, match=message) as e:
        load_config(path)
    assert "bad.toml" in str(e.value) and "\n" not in str(e.value)


def test_a_config_file_that_is_not_text(tmp_path):
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe[train]")
    with pytest.raises(aekit.ConfigError, match=r"bin\.toml: not a UTF-8 text file \(byte 0\); a config file is TOML"):
        load_config(tmp_path / "bin.toml")


def test_a_config_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Windows PowerShell 5 (Set-Content -Encoding UTF8) and older Notepad begin UTF-8 with a BOM, and end lines in CRLF;
    a Windows path in single quotes keeps its backslashes, as docs/configuration.md says."""
    (tmp_path / "bom.toml").write_bytes("\ufeff[data]\r\nsource = 'C:\\data\\faces'\r\n[train]\r\nepochs = 3\r\n".encode())
    cfg = load_config(tmp_path / "bom.toml")
    assert (cfg.data.source, cfg.train.epochs) == ("C:\\data\\faces", 3)


def test_missing_config_file(tmp_path):
    with pytest.raises(aekit.ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_every_option_is_documented_and_flags_are_unique():
    opts = config_options()
    assert all(o.help for o in opts), [o.key for o in opts if not o.help]
    flags = [o.flag for o in opts if o.flag]
    assert len(flags) == len(set(flags))
    keys = {o.key for o in opts}
    assert {"train.epochs", "data.source", "model.code_length", "model.beta", "model.hidden", "noise"} <= keys


def test_the_resume_rules_come_from_the_fields():
    assert resumable_keys() == {"train.epochs", "train.max_minutes", "train.device", "train.threads", "train.compile"}


def test_did_you_mean():
    assert did_you_mean("epochz", ["epochs", "lr"]) == " (did you mean 'epochs'?)"
    assert did_you_mean("zzz", ["epochs", "lr"]) == ""
