"""Held-out splits: the last part of the seeded order, or whole labels (unseen people)."""

import pytest

import aekit
from aekit.data import load_data, load_olivetti, split_indices, validation_split
from helpers import make_folder


def test_random_split_is_first_and_last_part_of_the_order():
    data = load_olivetti()
    tr, te = split_indices(data, split="random", test_fraction=0.2)
    assert list(tr) == list(range(320)) and list(te) == list(range(320, 400))
    tr, te = split_indices(data, split="random", test_fraction=0.0)
    assert len(tr) == 400 and len(te) == 0
    for fraction in (-0.1, 1.0):  # a negative fraction gave (400, 0) silently
        with pytest.raises(aekit.DataError, match=rf"data.test_fraction must lie in \[0, 1\), got {fraction}"):
            split_indices(data, test_fraction=fraction)


def test_a_single_image_cannot_be_split_and_the_error_says_what_can(tmp_path):
    data = load_data(make_folder(tmp_path / "one", 1, subfolders=()))
    with pytest.raises(aekit.AekitError, match=r"leaves no training images out of 1 \(data.test_fraction 0 trains"):
        split_indices(data, split="random", test_fraction=0.2)
    assert [len(i) for i in split_indices(data, split="random", test_fraction=0.0)] == [1, 0]


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


def test_validation_is_carved_from_the_training_images_never_the_test_split():
    data = load_olivetti()
    tr, te = split_indices(data, split="subject")
    fit, val, how = validation_split(data, tr, fraction=0.1, seed=3)
    assert set(val).isdisjoint(te) and set(fit) | set(val) == set(tr) and not set(fit) & set(val)
    assert how.startswith("whole labels") and set(data.labels[val]).isdisjoint(data.labels[fit])  # whole people
    assert len(set(data.labels[val])) == 3  # a tenth of the 32 training people
    again = validation_split(data, tr, fraction=0.1, seed=3)[1]
    assert list(again) == list(val) and list(validation_split(data, tr, fraction=0.1, seed=4)[1]) != list(val)


def test_without_enough_labels_the_validation_split_is_a_random_tenth(tmp_path):
    flat = load_data(str(make_folder(tmp_path / "flat", 20, subfolders=())), workers=0)
    fit, val, how = validation_split(flat, range(20), fraction=0.1, seed=0)
    assert len(val) == 2 and len(fit) == 18 and how.startswith("a random 2 of 20")
    two = load_data(str(make_folder(tmp_path / "two", 20, subfolders=("a", "b"))), workers=0)
    assert validation_split(two, range(20), fraction=0.1, seed=0)[2].startswith("a random")  # 2 labels: too few
    five = load_data(str(make_folder(tmp_path / "five", 20, subfolders=tuple("abcde"))), workers=0)
    fit, val, how = validation_split(five, range(20), fraction=0.2, seed=0)
    assert how.startswith("whole labels") and len({five.label_names[i] for i in five.labels[val]}) == 1
    assert len(validation_split(flat, [0], seed=0)[1]) == 0  # one image: nothing to spare


@pytest.mark.parametrize("seed", range(6))
def test_one_large_photos_tiles_are_never_the_validation_split(seed):
    """21 photos of 1 tile and one of 1036: validation takes 2 of the photos (a tenth), never the big one's
    tiles (seed 2 took them before: 1037 validation tiles and 20 to train on)."""
    import numpy as np
    import torch

    groups = np.array([0] * 1036 + list(range(1, 22)))
    data = aekit.data.ImageData(images=torch.zeros(len(groups), 1, 2, 2), groups=groups)
    fit, val, how = validation_split(data, np.arange(len(groups)), fraction=0.1, seed=seed)
    assert len(val) == 2 and 0 not in groups[val] and how == "the tiles of a random 2 of 22 training images"
