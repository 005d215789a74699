"""Data sources -> float32 tensors of shape (N, C, H, W) with values in [0, 1].

``load_data("olivetti")`` wraps scikit-learn's ``fetch_olivetti_faces``: 400 grayscale faces of
64 x 64, 40 people x 10 images, in the reference's order (``shuffle=True, random_state=seed``;
seed 1000 is the reference). It works offline from scikit-learn's cache
(``$SCIKIT_LEARN_DATA`` or ``data_home``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError

OLIVETTI_FILE = "olivetti_py3.pkz"


@dataclass
class ImageData:
    images: torch.Tensor  # (N, C, H, W) float32 in [0, 1], at the source's native resolution
    labels: np.ndarray | None = None  # (N,) integer labels (Olivetti: the person), or None
    names: list[str] | None = None  # one name per image (file names for folders)
    source: str = ""  # where the images came from

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, index) -> "ImageData":
        index = np.asarray(index, dtype=np.int64)
        return ImageData(
            images=self.images[torch.from_numpy(index)],
            labels=None if self.labels is None else self.labels[index],
            names=None if self.names is None else [self.names[i] for i in index],
            source=self.source,
        )


def load_data(source: str = "olivetti", *, seed: int = 1000, data_home: str | None = None) -> ImageData:
    """Load a data source as :class:`ImageData` (float32, (N, C, H, W), values in [0, 1])."""
    if source == "olivetti":
        return load_olivetti(seed=seed, data_home=data_home)
    raise DataError(f"--data {source!r}: unknown data source (known: olivetti)")


def load_olivetti(*, seed: int = 1000, data_home: str | None = None) -> ImageData:
    """The Olivetti faces, (400, 1, 64, 64), in scikit-learn's order for ``random_state=seed``."""
    images, labels = _fetch_olivetti(seed, data_home)
    return ImageData(
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=labels.copy(),
        names=[f"olivetti-{i:03d}" for i in range(len(images))],
        source="olivetti",
    )


@lru_cache(maxsize=4)
def _fetch_olivetti(seed: int, data_home: str | None) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import fetch_olivetti_faces, get_data_home

    home = get_data_home(data_home)  # honours $SCIKIT_LEARN_DATA when data_home is None
    cached = Path(home) / OLIVETTI_FILE
    try:
        faces = fetch_olivetti_faces(
            data_home=data_home, shuffle=True, random_state=seed, download_if_missing=True
        )
    except Exception as e:  # no cache and no network, or a corrupt cache
        where = f"{cached} exists but could not be read" if cached.exists() else f"{cached} is missing"
        raise DataError(
            f"olivetti: {where} and downloading it failed ({type(e).__name__}: {e}); "
            "point SCIKIT_LEARN_DATA or --data-home at a folder holding olivetti_py3.pkz, "
            "or connect to the internet so scikit-learn can download it"
        ) from None
    return faces.images.astype(np.float32), faces.target.astype(np.int64)


# --- resizing ---------------------------------------------------------------------------------

def resize(images: torch.Tensor, size: tuple[int, int], method: str = "bicubic") -> torch.Tensor:
    """Resize (N, C, H, W) images to ``size`` = (height, width); values are clipped to [0, 1].

    ``legacy-bicubic`` is TensorFlow 1's ``resize_images(..., BICUBIC)`` (align_corners=False,
    half_pixel_centers=False, Keys kernel a=-0.5, edge-clamped); for an exact 2x downscale it
    equals ``x[..., ::2, ::2]``. ``bicubic``/``bilinear`` are PyTorch's half-pixel resizes
    (antialiased when shrinking), ``area`` averages, ``nearest`` picks.
    """
    h, w = size
    if tuple(images.shape[-2:]) == (h, w):
        return images
    if method == "legacy-bicubic":
        my = _legacy_bicubic_matrix(images.shape[-2], h).to(images)
        mx = _legacy_bicubic_matrix(images.shape[-1], w).to(images)
        out = torch.einsum("yh,nchw,xw->ncyx", my, images, mx)
    elif method in ("bicubic", "bilinear"):
        shrink = h < images.shape[-2] or w < images.shape[-1]
        out = F.interpolate(images, size=(h, w), mode=method, align_corners=False, antialias=shrink)
    elif method == "area":
        out = F.interpolate(images, size=(h, w), mode="area")
    elif method == "nearest":
        out = F.interpolate(images, size=(h, w), mode="nearest-exact")
    else:
        raise DataError(f"unknown resize method {method!r}")
    return out.clamp_(0.0, 1.0)


@lru_cache(maxsize=32)
def _legacy_bicubic_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) weights of TF1's legacy bicubic resize along one axis."""
    a = -0.5
    scale = n_in / n_out
    m = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        src = i * scale  # no half-pixel offset in TF1's legacy mode
        base = int(np.floor(src))
        t = src - base
        for k in range(-1, 3):
            d = abs(k - t)
            if d <= 1:
                wgt = ((a + 2) * d - (a + 3)) * d * d + 1
            elif d < 2:
                wgt = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
            else:
                wgt = 0.0
            m[i, min(max(base + k, 0), n_in - 1)] += wgt
    return torch.from_numpy(m.astype(np.float32))


# --- splits -----------------------------------------------------------------------------------

def split_indices(
    data: ImageData, *, split: str = "random", test_fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices.

    random:  the first (1 - test_fraction) of the data's (seeded) order train, the rest test;
    subject: people 0-31 train, 32-39 test (needs labels), so test faces are of unseen people.
    """
    n = len(data)
    if split == "random":
        n_test = int(round(n * test_fraction))
        if test_fraction > 0 and n_test == 0:
            n_test = 1
        if n_test >= n:
            raise DataError(f"test_fraction {test_fraction} leaves no training images out of {n}")
        idx = np.arange(n)
        return idx[: n - n_test], idx[n - n_test :]
    if split == "subject":
        if data.labels is None:
            raise DataError(f"split 'subject' needs labels, and {data.source} has none")
        people = np.unique(data.labels)
        n_test_people = max(1, int(round(len(people) * 0.2)))
        test_people = people[len(people) - n_test_people :]
        is_test = np.isin(data.labels, test_people)
        return np.flatnonzero(~is_test), np.flatnonzero(is_test)
    raise DataError(f"unknown split {split!r} (known: random, subject)")
