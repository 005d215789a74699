"""Arrays of images: a ``.npy`` file, or a ``.npz`` holding one array (or ``images`` and ``labels``)."""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from ..errors import DataError
from ..memory import allocation_as, gib, too_much
from .container import ImageData

ARRAY_CHANNELS = (1, 3, 4)  # channel counts an array may have (4: RGBA, composited on black)


def load_array(path: str | Path | np.ndarray, *, seed: int = 1000, layout: str = "auto",
               rescale: bool = False) -> ImageData:
    """Images from a ``.npy`` file, a ``.npz`` holding one array (or ``images``, plus optional ``labels``),
    or a NumPy array itself (named ``array`` in messages and image names).

    Shapes: (N, H, W) is grayscale; a 4-d array is (N, H, W, C) when only its last axis has 1, 3
    or 4 values, (N, C, H, W) when only axis 1 has; when both have, ``layout`` ("nhwc" or "nchw")
    must say which. 4 channels are RGBA, composited on black. Values: uint8 / 255, uint16 / 65535,
    floats as they are (they must lie in [0, 1]); ``rescale`` maps the array's min..max to 0..1 instead.
    The images come in a seeded order (``seed``), like Olivetti's.
    """
    if isinstance(path, np.ndarray):
        a, labels, path = path, None, Path("array")
    else:
        path = Path(path)
        with allocation_as(lambda: f"{path}: its array does not fit in memory: give fewer images (or smaller ones) in a "
                                   "file", DataError):
            a, labels = _read_array(path)
    with allocation_as(lambda: f"{path}: its array of shape {a.shape} ({a.dtype}) does not fit in memory as float32 "
                               f"images ({gib(a.size * 4)}): give fewer images (or smaller ones) in a file", DataError):
        return _images(a, labels, path, seed, layout, rescale)


def _images(a: np.ndarray, labels: np.ndarray | None, path: Path, seed: int, layout: str, rescale: bool) -> ImageData:
    """:func:`load_array`'s images from the array ``a`` (read from ``path``)."""
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
        names=[f"{path.name}[{i:0{len(str(len(x) - 1))}d}]" for i in order],
        source=str(path),
        label_names=label_names,
    )


def load_npy(path: str | Path, *, images: bool = False) -> np.ndarray:
    """The array of a .npy file (never a pickle), once its header is checked against the file's size: a damaged
    header declaring a huge shape is a ValueError, not an attempt to allocate it; with ``images``, also against the
    memory available (:func:`check_fits`). A pipe or a device is a ValueError too (reading one would wait, or never end),
    and a pickle is one that says so, not numpy's advice to load it anyway."""
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError("not a file but a pipe, a device or a folder")
    with open(path, "rb") as f:
        declared = check_header(f, os.fstat(f.fileno()).st_size)
    if images:
        check_fits(declared, Path(path))
    try:
        a = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e):
            raise ValueError("no plain NumPy array in it: numpy would read it as pickled Python objects, which "
                             "could run code") from None
        raise
    if not isinstance(a, np.ndarray):  # numpy reads a .npz archive by its content, whatever its name
        a.close()
        raise ValueError("a .npz archive of arrays, not one .npy array")
    return a


def check_header(f: BinaryIO, size: int) -> tuple[tuple[int, ...], np.dtype] | None:
    """The shape and dtype the .npy data ``f`` (read from its start) declares; a ValueError when they take more bytes
    than its ``size`` (None for anything but a .npy array of a known version: numpy's load says what it is)."""
    magic = f.read(8)
    if magic[:6] != np.lib.format.MAGIC_PREFIX or tuple(magic[6:]) not in ((1, 0), (2, 0), (3, 0)):
        return None
    read = np.lib.format.read_array_header_1_0 if magic[6] == 1 else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(f)
    need = f.tell() + math.prod(shape) * dtype.itemsize
    if need > size and not dtype.hasobject:  # (numpy refuses an array of objects itself)
        raise ValueError(f"damaged or truncated: its header declares a {dtype} array of shape {shape}, "
                         f"{need} bytes, but the file holds {size}: write it again")
    return shape, dtype


def check_fits(declared: tuple[tuple[int, ...], np.dtype] | None, path: Path, member: str = "") -> None:
    """A DataError when an array of images (``declared``: its shape and dtype, :func:`check_header`'s) and its float32
    images need more memory than is available, before it is read: a small .npz can expand to any size (a zip bomb)."""
    if declared is None:
        return
    shape, dtype = declared
    need = math.prod(shape) * (dtype.itemsize + (0 if dtype == np.float32 else 4))  # the array, its float32 images
    if more := too_much(need):
        which = f"member {member} " if member else ""
        raise DataError(f"{path}: {which}holds a {dtype} array of shape {shape}: it and its float32 images take "
                        f"{gib(need)}{more}; give fewer images (or smaller ones) in a file")


def _member(arrays, key: str, path: Path) -> np.ndarray:
    """The array ``key`` of an open .npz file, its header checked first (:func:`check_header`, :func:`check_fits`)."""
    name = f"{key}.npy" if f"{key}.npy" in arrays.zip.namelist() else key
    info = arrays.zip.getinfo(name)
    with arrays.zip.open(info) as f:
        check_fits(check_header(f, info.file_size), path, name)
    return arrays[key]


def _read_array(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        if path.suffix.lower() == ".npy":
            return load_npy(path, images=True), None
        with np.load(path, allow_pickle=False) as arrays:
            keys = list(arrays.keys())
            if "images" in keys:
                return _member(arrays, "images", path), _member(arrays, "labels", path) if "labels" in keys else None
            if len(keys) == 1:
                return _member(arrays, keys[0], path), None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        why = "not a NumPy file, or one holding Python objects" if "pickle" in str(e) else str(e)  # numpy's hint is unsafe
        raise DataError(f"{path}: not a readable {path.suffix} array ({why})") from None
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
                "or set data.rescale to map min..max to 0..1", keys="data.rescale",
            )
        return a.astype(np.float32, copy=False)
    raise DataError(
        f"{path}: dtype {a.dtype}: use uint8 (0-255), uint16 (0-65535) or floats in [0, 1], "
        "or set data.rescale to map min..max to 0..1", keys="data.rescale",
    )


def _to_nchw(x: np.ndarray, layout: str, path: Path) -> np.ndarray:
    if x.ndim == 3:
        if layout != "auto":
            raise DataError(f"{path}: data.layout {layout} is for 4-d arrays; shape {x.shape} is (N, H, W)",
                            keys="data.layout")
        return x[:, None]
    if layout == "auto":
        last, second = x.shape[3] in ARRAY_CHANNELS, x.shape[1] in ARRAY_CHANNELS
        if last and second:
            raise DataError(
                f"{path}: shape {x.shape} is ambiguous (channels could be axis 1 or axis 3); "
                "give data.layout nhwc or nchw", keys="data.layout",
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
        raise DataError(f"{path}: {x.shape[1]} channels with data.layout {layout}; expected 1, 3 or 4 (RGBA)",
                        keys="data.layout")
    return x
