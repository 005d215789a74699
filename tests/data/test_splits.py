"""Held-out splits: the last part of the seeded order, or whole labels (unseen people)."""

import pytest

import aekit
from aekit.data import load_data, load_olivetti, split_indices
from helpers import make_folder


def test_random_split_is_first_and_last_part_of_the_order():
    data = load_olivetti()
    tr, te = split_indices(data, split="random", test_fraction=0.2)
    assert list(tr) == list(range(320)) and list(te) == list(range(320, 400))
    tr, te = split_indices(data, split="random", test_fraction=0.0)
    assert len(tr) == 400 and len(te) == 0


def test_subject_split_holds_out_unseen_people():
    data = load_olivetti()
    tr, te = split_indices(data, split="subject")
    assert set(data.labels[tr]) == set(range(32))
    assert set(data.labels[te]) == set(range(32, 40))


def test_subject_split_holds_out_whole_labels(tmp_path):
    root = make_folder(tmp_path / "f", 20, subfolders=("a", "b", "c", "d", "e"))
    data = load_data(str(root), workers=0)
    tr, te = split_indices(data, split="subject")
    assert {data.label_names[i] for i in data.labels[te]} == {"e"}  # the last 20% of the labels
    assert "e" not in {data.label_names[i] for i in data.labels[tr]}
    one = load_data(str(make_folder(tmp_path / "g", 4, subfolders=("only",))), workers=0)
    with pytest.raises(aekit.DataError, match="has only one"):
        split_indices(one, split="subject")
    flat = load_data(str(make_folder(tmp_path / "h", 4, subfolders=())), workers=0)
    with pytest.raises(aekit.DataError, match="own subfolder"):
        split_indices(flat, split="subject")
