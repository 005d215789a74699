"""Held-out splits: seeded, by position in the data's order or by whole labels (unseen people)."""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from ..errors import DataError
from .container import ImageData


SplitName = Literal["random", "subject"]
SUBJECT_TEST_FRACTION = 0.2  # the subject split holds out the last fifth of the labels (people)

def split_indices(
    data: ImageData, *, split: str = "random", test_fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices.

    random:  the first (1 - test_fraction) of the data's (seeded) order train, the rest test (tiles:
             cut at the nearest boundary between two images' tiles);
    subject: whole labels are held out: the last 20% of the sorted label values test, the rest
             train (Olivetti: people 0-31 train, 32-39 test, so test faces are of unseen people;
             a folder: its last 20% of subfolders). Needs at least two labels.
    """
    n = len(data)
    if not 0 <= test_fraction < 1:  # aekit.train's validation refuses it too; this is the Python API's door
        raise DataError(f"data.test_fraction must lie in [0, 1), got {test_fraction}", keys="data.test_fraction")
    if split == "random":
        n_test = int(round(n * test_fraction))
        if test_fraction > 0 and n_test == 0:
            n_test = 1
        if n_test >= n:
            raise DataError(f"data.test_fraction {test_fraction} leaves no training images out of {n} (data.test_fraction "
                            "0 trains on all of them, with no held-out score)", keys="data.test_fraction")
        idx = np.arange(n)
        cut = n - n_test if data.groups is None or n_test == 0 else _group_cut(data, n - n_test)
        return idx[:cut], idx[cut:]
    if split == "subject":
        if data.labels is None:
            raise DataError(
                f"data.split 'subject' needs labels, and {data.source} has none "
                "(a folder: put each subject's images in its own subfolder; an array: a .npz with 'images' and "
                "'labels')", keys="data.split",
            )
        people = np.unique(data.labels)
        if len(people) < 2:
            raise DataError(f"data.split 'subject' holds out whole labels, and {data.source} has only one",
                            keys="data.split")
        n_test_people = max(1, int(round(len(people) * SUBJECT_TEST_FRACTION)))
        test_people = people[len(people) - n_test_people :]
        is_test = np.isin(data.labels, test_people)
        return np.flatnonzero(~is_test), np.flatnonzero(is_test)
    raise DataError(f"unknown data.split {split!r} (known: {', '.join(get_args(SplitName))})", keys="data.split")


def _group_cut(data: ImageData, cut: int) -> int:
    """The group boundary nearest ``cut`` that leaves images on both sides (the tiles of one image stay
    on one side of a split: a held-out tile is from an image never trained on)."""
    starts = np.flatnonzero(np.diff(data.groups)) + 1  # where each group after the first begins
    if not len(starts):
        raise DataError(f"data.test_fraction: {data.source} is one image's tiles, which a split cannot divide "
                        "(give more images, or data.test_fraction 0)", keys="data.test_fraction")
    return int(starts[np.argmin(np.abs(starts - cut))])


def _groups_for(order: np.ndarray, groups: np.ndarray, fraction: float) -> list:
    """A ``fraction`` of the groups (images cut into tiles), the first in ``order``, at least one and never all,
    skipping any that would bring their tiles past twice their share (one large photo's hundreds of tiles
    would otherwise be the validation split); the smallest when none fits."""
    sizes = {v: int(n) for v, n in zip(*np.unique(groups, return_counts=True))}
    want, limit = min(len(order) - 1, max(1, int(round(len(order) * fraction)))), 2 * fraction * len(groups)
    held, total = [], 0
    for v in order:
        if len(held) < want and total + sizes[v] <= limit:
            held.append(v)
            total += sizes[v]
    return held or [min(order, key=lambda v: sizes[v])]


MIN_LABELS_FOR_WHOLE = 5  # fewer labels among the training images: a random validation split instead


def validation_split(data: ImageData, train_index, *, fraction: float = 0.1, seed: int = 0,
                     by_labels: bool | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(fit, validation, how): a validation split carved from the training images ``train_index``,
    never from the test split, for model selection.

    Whole labels (people, subfolders) when the data has at least five of them among the training
    images (``by_labels``: force or forbid it): a seeded ``fraction`` of the labels, at least one;
    else a seeded random ``fraction`` of the images, at least one (tiles: of the images they were cut
    from, all of an image's tiles together; none when they are one image's). Empty when fewer than two
    training images (nothing can be spared).
    """
    train_index = np.asarray(train_index, dtype=np.int64)
    rng = np.random.RandomState(seed)
    if len(train_index) < 2 or fraction <= 0:
        return train_index, train_index[:0], "none"
    labels = None if data.labels is None else data.labels[train_index]
    whole = labels is not None and len(np.unique(labels)) >= MIN_LABELS_FOR_WHOLE if by_labels is None else by_labels
    if whole and labels is not None and len(np.unique(labels)) >= 2:
        values = np.unique(labels)
        n_val = min(len(values) - 1, max(1, int(round(len(values) * fraction))))
        held = rng.permutation(values)[:n_val]
        is_val = np.isin(labels, held)
        names = [data.label_names[v] if data.label_names else str(v) for v in sorted(held)]
        return train_index[~is_val], train_index[is_val], f"whole labels: {', '.join(names)}"
    if data.groups is not None:  # tiles: whole images, a seeded fraction of the tiles' images
        groups = data.groups[train_index]
        values = np.unique(groups)
        if len(values) < 2:
            return train_index, train_index[:0], "none"
        held = _groups_for(rng.permutation(values), groups, fraction)
        is_val = np.isin(groups, held)
        return train_index[~is_val], train_index[is_val], \
            f"the tiles of a random {len(held)} of {len(values)} training images"
    n_val = min(len(train_index) - 1, max(1, int(round(len(train_index) * fraction))))
    is_val = np.zeros(len(train_index), bool)
    is_val[rng.permutation(len(train_index))[:n_val]] = True
    return train_index[~is_val], train_index[is_val], f"a random {n_val} of {len(train_index)} training images"
