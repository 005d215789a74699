"""Data sources -> float32 tensors of shape (N, C, H, W) with values in [0, 1].

``load_data(source)`` reads:

- ``"olivetti"``: scikit-learn's ``fetch_olivetti_faces``, 400 grayscale faces of 64 x 64,
  40 people x 10 images, in the reference's order (``shuffle=True, random_state=seed``; seed 1000
  is the reference). It works offline from scikit-learn's cache (``$SCIKIT_LEARN_DATA`` or
  ``data_home``).
- a folder of images, searched recursively (:data:`aekit.images.IMAGE_SUFFIXES`); subfolder names
  are the labels. Each image is fitted to the working size as it is read (they may differ in
  size). Small folders are decoded into one tensor; large ones stream from disk through
  :class:`ImageFiles`, a torch Dataset read by DataLoader worker processes.
- a ``.npy`` / ``.npz`` array of (N, H, W), (N, H, W, C) or (N, C, H, W) images.

Every source comes in a seeded order (``seed``): the random split takes the last part of it.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError, DataError
from .images import LUMA, read_image

if TYPE_CHECKING:
    from .config import DataConfig
    from .folders import ImageFiles

OLIVETTI_FILE = "olivetti_py3.pkz"
ARRAY_CHANNELS = (1, 3, 4)  # channel counts an array may have (4: RGBA, composited on black)


@dataclass
class ImageData:
    images: "torch.Tensor | ImageFiles"  # (N, C, H, W) float32 in [0, 1] at the source's native resolution
    # (folders: fitted to the working size as read); when streaming, an ImageFiles dataset of (C, H, W) items
    labels: np.ndarray | None = None  # (N,) integer labels (Olivetti: the person; folders: the subfolder), or None
    names: list[str] | None = None  # one name per image (file paths relative to a folder)
    source: str = ""  # where the images came from
    label_names: list[str] | None = None  # the name of each label value (folders: subfolder paths)
    skipped: list[str] = field(default_factory=list)  # unreadable files left out (skip_bad), as "path: reason"

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def subset(self, index) -> "ImageData":
        index = np.asarray(index, dtype=np.int64)
        return ImageData(
            images=select(self.images, index),
            labels=None if self.labels is None else self.labels[index],
            names=None if self.names is None else [self.names[i] for i in index],
            source=self.source,
            label_names=self.label_names,
            skipped=self.skipped,
        )


def select(images: "torch.Tensor | ImageFiles", index) -> "torch.Tensor | ImageFiles":
    """The images at ``index``, of the same kind: a tensor, or a streaming dataset."""
    if isinstance(images, torch.Tensor):
        return images[torch.as_tensor(np.asarray(index, dtype=np.int64))]
    return images.subset(index)


def take(images: "torch.Tensor | ImageFiles", index) -> torch.Tensor:
    """The images at ``index`` as one (B, C, H, W) tensor (a streaming dataset decodes them)."""
    if isinstance(images, torch.Tensor):
        return select(images, index)
    return torch.stack([images[int(i)] for i in index])


def load_data(
    source: str = "olivetti",
    *,
    seed: int = 1000,
    data_home: str | None = None,
    size: tuple[int, int] | None = None,
    fit: str = "resize",
    method: str = "bicubic",
    channels: str | int = "auto",
    layout: str = "auto",
    rescale: bool = False,
    skip_bad: bool = False,
    stream: str = "auto",
    workers: int | None = None,
) -> ImageData:
    """Load a data source as :class:`ImageData` (float32, (N, C, H, W), values in [0, 1]).

    ``source``: ``"olivetti"``, a folder of images or a ``.npy``/``.npz`` file; ``seed`` fixes the order.
    ``channels``: ``"auto"`` keeps the source's (a folder: 1 when every image is grayscale, else 3),
    1 or 3 converts (RGB -> gray by ITU-R 601 luma; gray -> RGB by copying).
    Folders only: their images are fitted to ``size`` with ``fit`` / ``method`` as they are read
    (None keeps the native size, which they must then share); ``skip_bad`` skips unreadable files;
    ``stream`` ("auto", "on", "off") and ``workers``: see :mod:`aekit.folders`.
    Olivetti and arrays come at their native size (see :func:`fit_images`); arrays take
    ``layout`` ("auto", "nhwc", "nchw") and ``rescale`` (map min..max to 0..1).
    """
    if source == "olivetti":
        data = load_olivetti(seed=seed, data_home=data_home)
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            from .folders import load_folder

            return load_folder(
                path, seed=seed, size=size, fit=fit, method=method, channels=channels,
                skip_bad=skip_bad, stream=stream, workers=workers,
            )
        if path.suffix.lower() not in (".npy", ".npz") or not path.is_file():
            what = "not a folder, .npy or .npz file" if path.exists() else "no such folder or file"
            raise DataError(
                f"--data {source!r}: unknown data source: {what} "
                "(known: olivetti, a folder of images, a .npy or .npz array)"
            )
        data = load_array(path, seed=seed, layout=layout, rescale=rescale)
    if stream == "on":
        raise ConfigError(f"data.stream 'on': only folders stream, and {data.source} is loaded in memory")
    data.images = convert_channels(data.images, channels)
    return data


def load_from_config(data: "DataConfig", *, size: tuple[int, int] | None = None) -> ImageData:
    """:func:`load_data` with a configuration's ``[data]`` options; ``size`` defaults to ``data.size``."""
    return load_data(
        data.source, seed=data.order_seed, data_home=data.data_home, size=size or data.size, fit=data.fit,
        method=data.resize, channels=data.channels, layout=data.layout, rescale=data.rescale,
        skip_bad=data.skip_bad, stream=data.stream, workers=data.workers,
    )


def load_image(
    path: str | Path,
    *,
    size: tuple[int, int] | None = None,
    fit: str = "resize",
    method: str = "bicubic",
    channels: str | int = "auto",
) -> torch.Tensor:
    """One image file as a (C, H, W) float32 tensor in [0, 1], converted to ``channels`` and fitted
    to ``size`` (None: native size). For the file's own format, mode and size, see
    :func:`aekit.images.read_image`."""
    pixels, _ = read_image(path)
    x = convert_channels(torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0), channels)
    if size is not None:
        x = fit_images(x, size, fit, method, name=str(path))
    return x[0].contiguous()


def convert_channels(images: torch.Tensor, channels: str | int) -> torch.Tensor:
    """(N, C, H, W) with C = 1 or 3 -> ``channels`` ("auto" keeps C): luma for RGB -> gray, copies for gray -> RGB."""
    if channels == "auto" or images.shape[1] == channels:
        return images
    if channels == 3:
        return images.repeat(1, 3, 1, 1)
    return torch.einsum("nchw,c->nhw", images, torch.from_numpy(LUMA)).unsqueeze(1)


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


# --- arrays -----------------------------------------------------------------------------------

def load_array(path: str | Path, *, seed: int = 1000, layout: str = "auto", rescale: bool = False) -> ImageData:
    """Images from a ``.npy`` file, or a ``.npz`` holding one array (or ``images``, plus optional ``labels``).

    Shapes: (N, H, W) is grayscale; a 4-d array is (N, H, W, C) when only its last axis has 1, 3
    or 4 values, (N, C, H, W) when only axis 1 has; when both have, ``layout`` ("nhwc" or "nchw")
    must say which. 4 channels are RGBA, composited on black. Values: uint8 / 255, uint16 / 65535,
    floats as they are (they must lie in [0, 1]); ``rescale`` maps the array's min..max to 0..1 instead.
    The images come in a seeded order (``seed``), like Olivetti's.
    """
    path = Path(path)
    a, labels = _read_array(path)
    if a.ndim not in (3, 4):
        hint = " (one image? add a first axis of length 1)" if a.ndim == 2 else ""
        raise DataError(f"{path}: shape {a.shape}: expected (N, H, W), (N, H, W, C) or (N, C, H, W){hint}")
    if a.shape[0] == 0:
        raise DataError(f"{path}: holds zero images (shape {a.shape})")
    if labels is not None and labels.shape != (a.shape[0],):
        raise DataError(f"{path}: labels have shape {labels.shape}, expected ({a.shape[0]},): one per image")
    x = _to_nchw(_unit_range(a, rescale, path), layout, path)
    if x.shape[1] == 4:
        x = x[:, :3] * x[:, 3:]
    order = np.random.RandomState(seed).permutation(len(x))
    label_names = None
    if labels is not None:
        values, labels = np.unique(labels, return_inverse=True)
        label_names = [str(v) for v in values]
        labels = labels[order]
    return ImageData(
        images=torch.from_numpy(np.ascontiguousarray(x[order])),
        labels=labels,
        names=[f"{path.name}[{i}]" for i in order],
        source=str(path),
        label_names=label_names,
    )


def _read_array(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False), None
        with np.load(path, allow_pickle=False) as arrays:
            keys = list(arrays.keys())
            if "images" in keys:
                return arrays["images"], arrays["labels"] if "labels" in keys else None
            if len(keys) == 1:
                return arrays[keys[0]], None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable {path.suffix} array ({e})") from None
    raise DataError(
        f"{path}: holds {len(keys)} arrays ({', '.join(keys) or 'none'}); name the images 'images' "
        "(and their labels 'labels')"
    )


def _unit_range(a: np.ndarray, rescale: bool, path: Path) -> np.ndarray:
    """float32 values in [0, 1], by the dtype rule of :func:`load_array`."""
    if a.dtype.kind not in "biuf":
        raise DataError(f"{path}: dtype {a.dtype} is not numeric")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DataError(f"{path}: NaN or Inf at index {first} (image {first[0]})")
    if rescale:
        lo, hi = float(a.min()), float(a.max())
        x = (a.astype(np.float32) - lo) / (hi - lo) if hi > lo else np.zeros(a.shape, np.float32)
        return x.astype(np.float32, copy=False)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    if a.dtype.kind == "b":
        return a.astype(np.float32)
    if a.dtype.kind == "f":
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:
            raise DataError(
                f"{path}: float values lie in [{lo:g}, {hi:g}], outside [0, 1]; scale them, "
                "or add --rescale to map min..max to 0..1"
            )
        return a.astype(np.float32, copy=False)
    raise DataError(
        f"{path}: dtype {a.dtype}: use uint8 (0-255), uint16 (0-65535) or floats in [0, 1], "
        "or add --rescale to map min..max to 0..1"
    )


def _to_nchw(x: np.ndarray, layout: str, path: Path) -> np.ndarray:
    if x.ndim == 3:
        if layout != "auto":
            raise DataError(f"{path}: --layout {layout} is for 4-d arrays; shape {x.shape} is (N, H, W)")
        return x[:, None]
    if layout == "auto":
        last, second = x.shape[3] in ARRAY_CHANNELS, x.shape[1] in ARRAY_CHANNELS
        if last and second:
            raise DataError(
                f"{path}: shape {x.shape} is ambiguous (channels could be axis 1 or axis 3); "
                "give --layout nhwc or --layout nchw"
            )
        if not (last or second):
            raise DataError(
                f"{path}: shape {x.shape} has no channel axis of 1, 3 or 4 values; "
                "expected (N, H, W), (N, H, W, C) or (N, C, H, W)"
            )
        layout = "nhwc" if last else "nchw"
    if layout == "nhwc":
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1] not in ARRAY_CHANNELS:
        raise DataError(f"{path}: {x.shape[1]} channels with --layout {layout}; expected 1, 3 or 4 (RGBA)")
    return x


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


def fit_images(
    images: "torch.Tensor | ImageFiles",
    size: tuple[int, int],
    fit: str = "resize",
    method: str = "bicubic",
    *,
    name: str = "images",
) -> "torch.Tensor | ImageFiles":
    """Bring (N, C, H, W) images to ``size`` = (height, width).

    resize: scale each axis (the aspect ratio may change);
    crop:   scale, keeping the aspect ratio, until the image covers the size, then cut the centre;
            it never enlarges, so an image smaller than the size is an error naming ``name``;
    pad:    scale, keeping the aspect ratio, until the image fits, then pad with black around it.
    A streaming dataset is fitted as it reads, and is returned as it is.
    """
    h, w = size
    height, width = images.shape[-2:]
    if not isinstance(images, torch.Tensor) or (height, width) == (h, w):
        return images
    if fit == "resize":
        return resize(images, size, method)
    if fit == "crop":
        check_crop(name, (height, width), size)
        scale = max(h / height, w / width)
        sh, sw = max(h, round(height * scale)), max(w, round(width * scale))
        top, left = (sh - h) // 2, (sw - w) // 2
        return resize(images, (sh, sw), method)[..., top : top + h, left : left + w]
    if fit == "pad":
        scale = min(h / height, w / width)
        sh, sw = min(h, max(1, round(height * scale))), min(w, max(1, round(width * scale)))
        top, left = (h - sh) // 2, (w - sw) // 2
        return F.pad(resize(images, (sh, sw), method), (left, w - sw - left, top, h - sh - top))
    raise DataError(f"unknown fit {fit!r} (known: resize, crop, pad)")


def check_crop(name: str, image_size: tuple[int, int], size: tuple[int, int]) -> None:
    """``--fit crop`` never enlarges: an image smaller than the working size is an error naming it."""
    (height, width), (h, w) = image_size, size
    if height < h or width < w:
        raise DataError(
            f"{name}: {height}x{width} is smaller than the working size {h}x{w}, which --fit crop "
            "cannot fill without enlarging (use --fit pad or resize, or a smaller --size)"
        )


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
            raise DataError(f"test_fraction {test_fraction} leaves no training images out of {n}")
        idx = np.arange(n)
        return idx[: n - n_test], idx[n - n_test :]
    if split == "subject":
        if data.labels is None:
            raise DataError(
                f"split 'subject' needs labels, and {data.source} has none "
                "(a folder: put each subject's images in its own subfolder)"
            )
        people = np.unique(data.labels)
        if len(people) < 2:
            raise DataError(f"split 'subject' holds out whole labels, and {data.source} has only one")
        n_test_people = max(1, int(round(len(people) * 0.2)))
        test_people = people[len(people) - n_test_people :]
        is_test = np.isin(data.labels, test_people)
        return np.flatnonzero(~is_test), np.flatnonzero(is_test)
    raise DataError(f"unknown split {split!r} (known: random, subject)")


# --- batches ----------------------------------------------------------------------------------

def epoch_batches(
    images: "torch.Tensor | torch.utils.data.Dataset",
    batches: Sequence[torch.Tensor],
) -> Iterator[torch.Tensor]:
    """The clean batches of one pass, ``images[index]`` for each index tensor in ``batches``.

    An in-memory tensor is indexed (on its own device). A Dataset (a streaming :class:`ImageFiles`)
    is read by a DataLoader whose batches follow exactly those indices, with ``images.workers``
    worker processes decoding ahead; a DataError raised in a worker comes back as one line.
    """
    if isinstance(images, torch.Tensor):
        for index in batches:
            yield images[index.to(images.device)]
        return
    loader = torch.utils.data.DataLoader(
        images,
        batch_sampler=[index.tolist() for index in batches],
        num_workers=getattr(images, "workers", 0),
    )
    try:
        yield from loader
    except DataError as e:  # from a worker, torch wraps the message in the worker's traceback
        raise DataError(str(e).strip().splitlines()[-1].split("DataError: ", 1)[-1]) from None
