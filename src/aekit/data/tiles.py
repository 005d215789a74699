"""Tiles: every window of the working size an image holds, at its native resolution (``data.fit = "tiles"``).

A denoiser learns from pixels at their own scale; ``data.fit = "window"`` keeps one centre window of
each photo, ``"tiles"`` keeps them all: a grid of non-overlapping windows of the working size, as many
as fit, the grid centred (the margins left over are split between both sides). A 1000x800 photo at
256x256 gives 3 x 3 tiles where the window gives one. Each tile is an image; ``ImageData.groups`` says
which image it was cut from, and the splits keep an image's tiles together (a held-out tile is from a
photo the model never saw).
"""

from __future__ import annotations

import re

import numpy as np
import torch

from ..errors import DataError
from .container import ImageData
from .image_file import IMAGE_SUFFIXES
from .resize import check_crop


def tile_origins(image_size: tuple[int, int], size: tuple[int, int]) -> list[tuple[int, int]]:
    """(top, left) of every tile of ``size`` in an image of ``image_size``, row by row."""
    (height, width), (h, w) = image_size, size
    rows, cols = height // h, width // w
    top, left = (height - rows * h) // 2, (width - cols * w) // 2
    return [(top + r * h, left + c * w) for r in range(rows) for c in range(cols)]


def cut_tiles(image: torch.Tensor, size: tuple[int, int], *, name: str = "image") -> torch.Tensor:
    """The tiles of one (C, H, W) image as (T, C, h, w); an image smaller than ``size`` is an error naming it."""
    check_crop(name, tuple(image.shape[-2:]), size, "tiles")
    h, w = size
    return torch.stack([image[:, t : t + h, s : s + w] for t, s in tile_origins(tuple(image.shape[-2:]), size)])


_GRID = re.compile(r"-r[0-9]+c[0-9]+$")  # the grid suffix tile_name adds to a stem


def _on_stem(name: str, change) -> str:
    """``name`` with ``change`` applied to its stem: an image file keeps its suffix, any other name is all stem."""
    if name.lower().endswith(IMAGE_SUFFIXES):
        stem, suffix = name.rsplit(".", 1)
        return f"{change(stem)}.{suffix}"
    return change(name)


def tile_name(name: str, index: int, image_size: tuple[int, int], size: tuple[int, int]) -> str:
    """The name of tile ``index`` of the image ``name``: ``photo-r0c2.png`` (row and column of the grid)."""
    r, c = divmod(index, image_size[1] // size[1])
    return _on_stem(name, lambda stem: f"{stem}-r{r}c{c}")


def cut_from(name: str) -> str:
    """The name of the image a tile named ``name`` (:func:`tile_name`) was cut from: ``photo-r0c2.png`` ->
    ``photo.png``, ``x.npy-5-r1c0`` -> ``x.npy-5``."""
    return _on_stem(name, lambda stem: _GRID.sub("", stem))


def tile_data(data: ImageData, size: tuple[int, int]) -> ImageData:
    """``data`` (images in memory, all of one size) cut into tiles of ``size``, in the data's order, an
    image's tiles one after another; labels and names follow, ``groups`` numbers the images cut."""
    if not isinstance(data.images, torch.Tensor):
        raise DataError("data.fit tiles keeps the tiles in memory, and this source streams (data.stream on)",
                        keys=("data.fit", "data.stream"))
    image_size = tuple(data.images.shape[-2:])
    check_crop(data.source, image_size, size, "tiles")
    origins = tile_origins(image_size, size)
    h, w = size
    x = data.images
    images = torch.stack([x[..., t : t + h, s : s + w] for t, s in origins], 1).flatten(0, 1)  # image by image
    return tiled(data, images.contiguous(), [len(origins)] * len(data), image_size, size)


def tiled(data: ImageData, images: torch.Tensor, counts: list[int], image_sizes, size: tuple[int, int]) -> ImageData:
    """An :class:`ImageData` of ``images``, the tiles of ``data``'s images (``counts[i]`` of image ``i``, whose
    size is ``image_sizes[i]``, or one size for all), with labels, names and groups repeated to match."""
    counts = np.asarray(counts, dtype=np.int64)
    sizes = [tuple(image_sizes)] * len(counts) if np.ndim(image_sizes) == 1 else [tuple(s) for s in image_sizes]
    names = None if data.names is None else [
        tile_name(n, k, sizes[i], size) for i, n in enumerate(data.names) for k in range(counts[i])
    ]
    return ImageData(
        images=images,
        labels=None if data.labels is None else np.repeat(data.labels, counts),
        names=names,
        source=data.source,
        label_names=data.label_names,
        skipped=data.skipped,
        symmetric=data.symmetric,
        groups=np.repeat(np.arange(len(counts)), counts),
    )
