"""Every data source -> :class:`ImageData`: float32 tensors (N, C, H, W) with values in [0, 1].

``load_data(source)`` reads:

- ``"olivetti"``: scikit-learn's Olivetti faces (:mod:`aekit.data.olivetti`);
- ``"lfw-subset"``: the 100 faces of scikit-image's bundled LFW subset (:mod:`aekit.data.lfw`);
- a folder of images, searched recursively; subfolder names are the labels; each image is fitted to
  the working size as it is read (they may differ in size); large folders stream from disk
  (:mod:`aekit.data.folders`);
- a ``.npy`` / ``.npz`` array of (N, H, W), (N, H, W, C) or (N, C, H, W) images (:mod:`aekit.data.arrays`).

Every source comes in a seeded order (``seed``): the random split takes the last part of it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..files import user_path
from .arrays import load_array
from .container import ImageData
from .folders import load_folder
from .lfw import LFW_SOURCE, load_lfw
from .olivetti import load_olivetti
from .resize import convert_channels
from .tiles import tile_data


BUILT_IN = ("olivetti", LFW_SOURCE)  # the data sources known by name, not paths
ARRAY_SUFFIXES = (".npy", ".npz")  # a data source with one of these suffixes (any case) is an array file


def absolute_source(source: str) -> str:
    """A folder or array given as a path, made absolute (so a run's config.toml reads it from any folder);
    the built-in names as they are."""
    return source if source in BUILT_IN else os.path.abspath(user_path(source))


def load_data(
    source: str | np.ndarray | torch.Tensor = "olivetti",
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
    decode: bool = True,
) -> ImageData:
    """Load a data source as :class:`ImageData` (float32, (N, C, H, W), values in [0, 1]).

    ``source``: ``"olivetti"``, ``"lfw-subset"``, a folder of images, a ``.npy``/``.npz`` file or a NumPy array
    (as in the file); ``seed`` fixes the order.
    ``channels``: ``"auto"`` keeps the source's (a folder: 1 when every image is grayscale, else 3),
    1 or 3 converts (RGB -> gray by ITU-R 601 luma; gray -> RGB by copying).
    Folders only: their images are fitted to ``size`` with ``fit`` / ``method`` as they are read
    (None keeps the native size, which they must then share); ``skip_bad`` skips unreadable files;
    ``stream`` ("auto", "on", "off"), ``workers`` and ``decode`` (False: no file decoded up front): see
    :mod:`aekit.data.folders`.
    Olivetti and arrays come at their native size (see :func:`aekit.data.fit_images`), except that
    ``fit="tiles"`` with a ``size`` cuts every source into tiles (:mod:`aekit.data.tiles`); arrays take
    ``layout`` ("auto", "nhwc", "nchw") and ``rescale`` (map min..max to 0..1).
    """
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    if not isinstance(source, (str, os.PathLike, np.ndarray)):
        raise DataError(f"data.source: expected 'olivetti', '{LFW_SOURCE}', a folder, a .npy or .npz file or an array, "
                        f"got {type(source).__name__}", keys="data.source")
    if isinstance(source, np.ndarray):
        data = load_array(source, seed=seed, layout=layout, rescale=rescale)
    elif source == "olivetti":
        data = load_olivetti(seed=seed, data_home=data_home)
    elif source == LFW_SOURCE:
        data = load_lfw(seed=seed)
    else:
        path = Path(user_path(source))
        if path.is_dir():
            return load_folder(
                path, seed=seed, size=size, fit=fit, method=method, channels=channels,
                skip_bad=skip_bad, stream=stream, workers=workers, decode=decode,
            )
        if path.suffix.lower() not in ARRAY_SUFFIXES or not path.is_file():
            what = "not a folder, .npy or .npz file" if path.exists() else "no such folder or file"
            raise DataError(
                f"data.source {source!r}: unknown data source: {what} "
                f"(known: olivetti, {LFW_SOURCE}, a folder of images, a .npy or .npz array)", keys="data.source",
            )
        data = load_array(path, seed=seed, layout=layout, rescale=rescale)
    if stream == "on":
        raise ConfigError(f"data.stream 'on': only folders stream, and {data.source} is loaded in memory",
                          keys="data.stream")
    data.images = convert_channels(data.images, channels)
    return tile_data(data, size) if fit == "tiles" and size is not None else data
