import pytest

import aekit
from aekit.config import Config, dump_config, load_config, replace


def test_reference_config_is_experiment_a(root):
    cfg = load_config(root / "configs" / "reference.toml")
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr) == (600, 50, 0.001)
    assert cfg.train.reference_loop is True
    assert cfg.model.name == "conv" and cfg.model.code_length == 256 and cfg.model.loss == "l2"
    assert cfg.data.resize == "legacy-bicubic" and cfg.data.test_fraction == 0.0
    assert cfg.seed == 1002 and cfg.data.order_seed == 1000


def test_fast_config_changes_only_the_schedule_of_the_reference(root):
    """benchmarks/time_to_quality.py compares the two: same data, architecture and loss, same Adam."""
    ref = load_config(root / "configs" / "reference.toml")
    fast = load_config(root / "configs" / "fast.toml")
    assert fast.data == ref.data and fast.model == ref.model and fast.noise == ref.noise
    assert (fast.train.beta1, fast.train.beta2, fast.train.eps) == (ref.train.beta1, ref.train.beta2, ref.train.eps)
    assert fast.train.data_init and not ref.train.data_init


def test_defaults_hold_out_a_fifth_and_use_the_plain_loop():
    cfg = Config()
    assert cfg.data.test_fraction == 0.2 and cfg.train.reference_loop is False


def test_dump_and_load_round_trip(tmp_path, root):
    cfg = load_config(root / "configs" / "reference.toml")
    path = tmp_path / "c.toml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


def test_overrides():
    cfg = replace(Config(), seed=3, **{"train.epochs": 7, "model.code_length": 512, "data.test_fraction": 0.1})
    assert (cfg.seed, cfg.train.epochs, cfg.model.code_length, cfg.data.test_fraction) == (3, 7, 512, 0.1)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[train]\nepochz = 3\n", r"\[train\]: unknown key 'epochz'"),
        ("[train]\nepochs = 'many'\n", r"train\]\.epochs: expected an integer"),
        ("[train]\nepochs = -1\n", r"train\.epochs must be at least 1"),
        ("[train]\nshift = -2\n", r"train\.shift must be 0 or more pixels, got -2"),
        ("[model]\nname = 'conv'\ncode_length = 100\n", "code_length 100 does not fit"),
        ("[model]\nname = 'transformer'\n", "unknown model 'transformer'"),
        ("[data]\nresize = 'lanczos9'\n", "'lanczos9' is not one of"),
        ("name = [1\n", "not valid TOML"),
    ],
)
def test_bad_config_files_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(aekit.ConfigError, match=message) as e:
        load_config(path)
    assert "bad.toml" in str(e.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(aekit.ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
