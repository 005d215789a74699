"""Saving and loading (models/io.py): damaged or foreign model.json and weights are one line naming the file."""

import json
import shutil

import pytest

import aekit
from aekit.models import create_model

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
