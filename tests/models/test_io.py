"""Saving and loading (models/io.py): damaged or foreign model.json and weights are one line naming the file."""

import json
import shutil

import pytest
import torch

import aekit
from aekit.models import create_model
from aekit.run_folder import RunFolder

SMALL = {"encoder_channels": (4, 4, 4, 4), "decoder_channels": (4, 4, 4)}


@pytest.fixture
def saved(tmp_path):
    """A small conv model saved as a model folder (with what training records in "preprocess")."""
    preprocess = {"size": [32, 32], "resize": "bicubic", "channels": 1, "fit": "resize", "crop": 0}
    return aekit.save(create_model("conv", **SMALL).eval(), tmp_path / "m", preprocess=preprocess)


def edit(folder, change) -> None:
    """Rewrite the folder's model.json through ``change(meta)``."""
    path = folder / "model.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def test_weights_of_another_model_name_the_file_and_the_first_difference_in_one_short_line(saved, tmp_path):
    """Was torch's message of hundreds of characters, cut to '(Error(s) in loading state_dict for ...:)'."""
    other = aekit.save(create_model("conv", code_length=16, **SMALL), tmp_path / "other")
    shutil.copy(other / "model.safetensors", saved / "model.safetensors")
    with pytest.raises(aekit.AekitError) as e:
        aekit.load(saved)
    assert str(e.value) == (f"{saved / 'model.safetensors'}: the weights do not match model.json (code.0.weight has "
                            "shape (16, 1024), the model's (256, 1024); 4 differences): the two files are of "
                            "different models; restore them from one save")


@pytest.mark.parametrize("field, value, message", [
    ("preprocess", "bicubic", "preprocess: expected a table, got str"),
    ("preprocess", {"size": "big"}, "preprocess.size: expected a list, got 'big'"),
    ("preprocess", {"size": [0, 32]}, "preprocess.size must be positive, got 0x32"),
    ("preprocess", {"size": [100000, 100000]}, "preprocess.size must be at most 65536 a side, got 100000x100000"),
    ("preprocess", {"size": [40000, 40000]}, "preprocess.size 40000x40000 is not the size its conv model works at "
                                             "(config.input_size 32x32); training writes the same size in both"),
    ("preprocess", {"resize": 3}, "preprocess.resize: 3 is not one of"),
    ("preprocess", {"channels": "rgb"}, "preprocess.channels: 'rgb' is not one of 1, 3"),
    ("preprocess", {"colour": True}, "preprocess: unknown key 'colour'"),
    ("config", "conv", "config: expected a table, got str"),
    ("config", None, "config: expected a table, got NoneType"),  # none: was the default conv model's, silently
])
def test_a_field_of_the_wrong_type_names_model_json(saved, field, value, message):
    """A preprocess of the wrong type was a ValueError or AttributeError from the first command that read it."""
    edit(saved, lambda meta: meta.update({field: value}))
    with pytest.raises(aekit.AekitError) as e:
        aekit.load(saved)
    assert str(e.value).startswith(f"{saved / 'model.json'}: {message}")
    assert str(e.value).endswith("(a damaged or hand-edited file: restore it)")


def test_a_model_json_of_a_newer_aekit_says_so(saved):
    """A new format or a key this version does not know, written by a newer aekit: upgrade, not 'not an aekit model'."""
    upgrade = (f"{saved / 'model.json'}: written by aekit 99.0.0, newer than this aekit {aekit.__version__}: "
               "upgrade aekit (pip install -U aekit)")
    edit(saved, lambda meta: meta["config"].update(attention=True))
    with pytest.raises(aekit.AekitError, match="unknown key 'attention'"):  # the same aekit: the key is wrong
        aekit.load(saved)
    edit(saved, lambda meta: meta.update(aekit_version="99.0.0"))
    with pytest.raises(aekit.AekitError) as e:
        aekit.load(saved)
    assert str(e.value) == upgrade
    edit(saved, lambda meta: meta.update(format="aekit-model/2"))
    with pytest.raises(aekit.AekitError) as e:
        aekit.load(saved)
    assert str(e.value) == upgrade
    edit(saved, lambda meta: meta.update(aekit_version=aekit.__version__))
    with pytest.raises(aekit.AekitError, match=r"not an aekit model description \(format 'aekit-model/2'\)"):
        aekit.load(saved)


def never_built(monkeypatch):
    """Allocating the model's weights fails the test: building the model for real, or reading its weights (which
    become the weights of the model load builds on the meta device)."""
    import aekit.models.io
    import aekit.models.registry

    def built(*args, **kwargs):
        raise AssertionError("the model's weights were allocated before model.json was checked")

    monkeypatch.setattr(aekit.models.registry, "create_model", built)
    monkeypatch.setattr(aekit.models.io, "load_file", built)


def test_model_json_is_checked_against_the_weights_header_before_any_weight_is_allocated(saved, monkeypatch):
    """A channel of 65536 (or 10**6) in model.json took gigabytes, then the weights were found not to match."""
    edit(saved, lambda meta: meta["config"].update(encoder_channels=[4, 4, 4, 65536]))
    never_built(monkeypatch)
    with pytest.raises(aekit.AekitError) as e:
        aekit.load(saved)
    assert str(e.value) == (f"{saved / 'model.safetensors'}: the weights do not match model.json (encoder.6.conv.weight "
                            "has shape (4, 4, 3, 3), the model's (65536, 4, 3, 3); 3 differences): the two files are of "
                            "different models; restore them from one save")


@pytest.mark.parametrize("name, change, message", [
    ("unet", {"blocks": 100000}, "model.levels must be at most 16 and model.blocks at most 64, got 1 and 100000"),
    ("hybrid", {"refine_layers": 1000000}, "model.refine_layers at most 64, got 0, 4 and 1000000"),
])
def test_a_huge_layer_count_in_model_json_is_refused_before_anything_is_built(tmp_path, monkeypatch, name, change,
                                                                              message):
    """unet blocks = 100000 built for a minute, then std::bad_alloc; hybrid refine_layers = 10**6: a bare MemoryError."""
    small = {"unet": {"channels": 4, "levels": 1, "blocks": 1}, "hybrid": {"code_length": 4, "refine_channels": 4}}
    folder = aekit.save(create_model(name, **small[name]), tmp_path / "m")
    edit(folder, lambda meta: meta["config"].update(change))
    never_built(monkeypatch)
    with pytest.raises(aekit.AekitError) as e:
        aekit.load(folder)
    assert str(e.value).startswith(f"{folder / 'model.json'}: ") and message in str(e.value)
    assert str(e.value).endswith("(a damaged or hand-edited file: restore it)")


def test_a_working_size_too_large_for_memory_is_refused_when_the_model_is_loaded(tmp_path, monkeypatch):
    """A model for any size took preprocess.size 20000x20000 as it came; encode then read every image at it."""
    from aekit import memory

    folder = aekit.save(create_model("fcn", channels=(4,), code_length=4), tmp_path / "m",
                        preprocess={"size": [20000, 20000], "channels": 1})
    monkeypatch.setattr(memory, "available", lambda: 100 * 2**20)
    with pytest.raises(aekit.AekitError) as e:
        aekit.load(folder)
    assert str(e.value) == (f"{folder / 'model.json'}: preprocess.size 20000x20000: one image at the model's working "
                            "size takes 1.5 GiB, more than the 100.0 MiB of memory available (a damaged or "
                            "hand-edited file: restore it)")
    monkeypatch.undo()
    assert aekit.load(folder).preprocess["size"] == [20000, 20000]  # where memory holds it: as before


def test_a_model_of_an_architecture_an_older_aekit_had_under_its_name_says_so(tmp_path):
    """The VAE became another network on 2026-12-02: its older runs' weights were called 'of different models; restore
    them from one save', which no user can do."""
    aekit.save(create_model("vae", input_size=(16, 16), code_length=8, decoder_input="dense", start_channels=8),
               tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "model.json").read_text())
    del meta["config"]["start_channels"], meta["config"]["kl_warmup"]  # options that came with the new network
    (tmp_path / "old" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(aekit.AekitError, match=r"its model.json has no start_channels, kl_warmup: it was written by an "
                                                r"older aekit, whose vae was another network, and this aekit cannot "
                                                r"load it; train it again, or load it with the aekit that wrote it$"):
        aekit.load(tmp_path / "old")
    model = create_model("vae", input_size=(16, 16), code_length=8, decoder_input="dense", start_channels=8)
    text = aekit.dump_config(aekit.Config(model=model.config))  # its run's config.toml, without them too
    assert "start_channels = 8\n" in text and "kl_warmup = 300\n" in text
    (tmp_path / "old" / "config.toml").write_text(text.replace("start_channels = 8\n", "").replace("kl_warmup = 300\n", ""))
    with pytest.raises(aekit.AekitError, match="whose vae was another network"):  # not "put back the lines"
        RunFolder(tmp_path / "old").config()


@pytest.mark.parametrize("name", aekit.list_models())
def test_load_builds_no_weights_of_its_own_and_takes_those_read_in_the_models_dtypes_and_layout(tmp_path, name,
                                                                                                monkeypatch):
    """load builds the model on the meta device and the weights read become its own (a copy, in the dtypes and
    memory layout create_model gives): no random initialisation of weights that are then overwritten."""
    from safetensors.torch import load_file, save_file

    model = create_model(name).eval()
    folder = aekit.save(model, tmp_path / "m")
    wide = {k: v.double() if v.is_floating_point() else v for k, v in load_file(folder / "model.safetensors").items()}
    save_file(wide, folder / "model.safetensors", metadata={"format": "aekit-model/1"})  # float64, as a script may
    monkeypatch.setattr(torch.nn.init, "kaiming_uniform_", lambda t, *a, **k: t if t.is_meta else pytest.fail(
        "initialised weights for real"))  # (the build on the meta device calls it, and it allocates nothing)
    loaded = aekit.load(folder)
    for (k, mine), theirs in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert theirs.device.type == "cpu" and theirs.dtype == mine.dtype and torch.equal(theirs, mine), k
        assert theirs.is_contiguous(memory_format=torch.channels_last) == mine.is_contiguous(
            memory_format=torch.channels_last), k
    out = loaded.train()(torch.rand(2, 1, *loaded.config.input_size))
    out.loss.backward()  # its weights train: writable, with gradients
    assert all(p.grad is not None for p in loaded.parameters() if p.requires_grad)
