"""Held-out splits: seeded, by position in the data's order or by whole labels (unseen people)."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .container import ImageData


def split_indices(
    data: ImageData, *, split: str = "random", test_fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices.

    random:  the first (1 - test_fraction) of the data's (seeded) order train, the rest test;
    subject: whole labels are held out: the last 20% of the sorted label values test, the rest
             train (Olivetti: people 0-31 train, 32-39 test, so test faces are of unseen people;
             a folder: its last 20% of subfolders). Needs at least two labels.
    """
    n = len(data)
    if split == "random":
        n_test = int(round(n * test_fraction))
        if test_fraction > 0 and n_test == 0:
            n_test = 1
        if n_test >= n:
            raise DataError(f"data.test_fraction {test_fraction} leaves no training images out of {n}",
                           keys="data.test_fraction")
        idx = np.arange(n)
        return idx[: n - n_test], idx[n - n_test :]
    if split == "subject":
        if data.labels is None:
            raise DataError(
                f"data.split 'subject' needs labels, and {data.source} has none "
                "(a folder: put each subject's images in its own subfolder)", keys="data.split",
            )
        people = np.unique(data.labels)
        if len(people) < 2:
            raise DataError(f"data.split 'subject' holds out whole labels, and {data.source} has only one",
                            keys="data.split")
        n_test_people = max(1, int(round(len(people) * 0.2)))
        test_people = people[len(people) - n_test_people :]
        is_test = np.isin(data.labels, test_people)
        return np.flatnonzero(~is_test), np.flatnonzero(is_test)
    raise DataError(f"unknown data.split {split!r} (known: random, subject)", keys="data.split")
