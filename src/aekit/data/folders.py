"""Folders of image files: found recursively, checked up front, held in memory or streamed from disk.

``load_folder(folder)`` does, in order:

1. lists the image files under ``folder`` (:data:`aekit.data.image_file.IMAGE_SUFFIXES`, any case; hidden
   files and folders and other suffixes are ignored, an image reached twice through links is listed
   once) and puts them in a seeded random order;
2. reads every file's header (format, mode, size): a file that is not an image stops the load with
   its name, or with ``skip_bad`` is skipped and listed;
3. settles the channels ("auto": 1 when every file is grayscale, else 3) and the working size
   (None: the images' common size);
4. decodes every file once, in DataLoader worker processes (in this process where shared memory is short:
   :mod:`aekit.data.workers`), to find truncated or corrupt ones; a small folder keeps the decoded images as one
   tensor (made up front, each batch copied in: :mod:`aekit.data.decoding`), a large one streams:
   :class:`ImageFiles`, a torch Dataset, decodes each image whenever a batch needs it.

Stream rule: ``stream="auto"`` streams when the decoded images would take more than
:data:`STREAM_ABOVE_BYTES` (N x C x H x W x 4 bytes at the working size); "on" / "off" force it.
Names: each file's path relative to ``folder``, with "/" between folders and in Unicode NFC form
(:func:`relative_names`), the same on every system; the files are sorted by them before the seeded order.
Labels: the subfolder of each file, its name's folder part (files at the top get "."); a folder with
no subfolders has no labels. With ``fit="tiles"`` every file gives all its tiles (:mod:`aekit.data.tiles`), held in memory.
``decode=False`` leaves step 4 out (for a run's evaluation, which reads only its held-out images): the files
stream, unchecked, each decoded when asked for; tiles are decoded and held as always.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, skip_bad_hint
from .container import ImageData
from .decoding import Decoding, Each
from .image_file import IMAGE_SUFFIXES, ImageInfo, load_image, probe_image
from .resize import check_crop
from .tiles import cut_tiles, tile_origins, tiled
from .workers import leave_if_reimported, worker_count

STREAM_ABOVE_BYTES = 1 << 30  # stream="auto": stream a folder whose decoded images exceed 1 GiB


class ImageFiles(torch.utils.data.Dataset):
    """Image files decoded on demand: item ``i`` is file ``i`` as a (C, H, W) float32 tensor in [0, 1],
    converted to ``channels`` and fitted to ``size``. It holds file names only; a DataLoader with
    ``workers`` worker processes reads it in parallel (see :func:`aekit.data.batches.epoch_batches`)."""

    def __init__(
        self,
        files: list[str],
        *,
        size: tuple[int, int],
        channels: int,
        fit: str = "resize",
        method: str = "bicubic",
        workers: int | None = None,
    ):
        self.files = list(files)
        self.size = tuple(size)
        self.channels = channels
        self.fit = fit
        self.method = method
        self.workers = worker_count(workers)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.read(self.files[i])

    def read(self, file: str) -> torch.Tensor:
        """One file as item ``i`` is; with fit "tiles", all its tiles, (T, C, h, w) (when checking a folder held in memory)."""
        if self.fit == "tiles":
            return cut_tiles(load_image(file, channels=self.channels), self.size, name=file)
        return load_image(file, size=self.size, fit=self.fit, method=self.method, channels=self.channels)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.channels, *self.size)

    def subset(self, index) -> "ImageFiles":
        return ImageFiles(
            [self.files[i] for i in index], size=self.size, channels=self.channels, fit=self.fit,
            method=self.method, workers=self.workers,
        )


def load_folder(
    folder: str | Path,
    *,
    seed: int = 1000,
    size: tuple[int, int] | None = None,
    fit: str = "resize",
    method: str = "bicubic",
    channels: str | int = "auto",
    skip_bad: bool = False,
    stream: str = "auto",
    workers: int | None = None,
    decode: bool = True,
) -> ImageData:
    """A folder of images as :class:`ImageData` at ``size`` (see the module's docstring; ``decode``: see there)."""
    leave_if_reimported()  # a worker process importing a script that loads this folder at its top level
    folder = Path(folder)
    files, ignored = image_files(folder)
    if not files:
        others = f" ({ignored})" if ignored else ""
        raise DataError(f"data.source {folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it{others}",
                        keys="data.source")
    files = [files[i] for i in np.random.RandomState(seed).permutation(len(files))]
    skipped: list[str] = []

    def bad(problem: str) -> None:
        if not skip_bad:
            raise skip_bad_hint(DataError(problem), "data.skip_bad")
        skipped.append(problem)

    infos: list[ImageInfo] = []
    readable: list[str] = []
    for f in files:
        try:
            infos.append(probe_image(f))
            readable.append(f)
        except DataError as e:
            bad(str(e))
    _no_usable_image(folder, readable, skipped)
    channels = (1 if all(i.channels == 1 for i in infos) else 3) if channels == "auto" else channels
    size = _common_size(folder, readable, infos) if size is None else tuple(size)
    if fit in ("crop", "window", "tiles"):
        for f, info in zip(readable, infos):
            check_crop(f, info.size, size, fit)

    dataset = ImageFiles(readable, size=size, channels=channels, fit=fit, method=method, workers=workers)
    per_file = [len(tile_origins(i.size, size)) for i in infos] if fit == "tiles" else [1] * len(readable)
    need = sum(per_file) * np.prod(dataset.shape[1:]) * 4  # bytes of the decoded images (or tiles)
    streaming = stream == "on" or (stream == "auto" and need > STREAM_ABOVE_BYTES)
    if streaming and fit == "tiles":
        why = "cannot stream them (leave data.stream auto)" if stream == "on" else (
            f"and its {sum(per_file)} tiles take {need / 2**30:.1f} GiB, more than the {STREAM_ABOVE_BYTES / 2**30:g} GiB "
            "it holds unasked: data.stream off holds them all the same, where there is the memory (a larger data.size "
            "does not shrink them: the tiles cover the photos), or data.fit window takes one window a photo")
        raise DataError(f"data.source {folder}: data.fit tiles keeps the tiles in memory, {why}",
                        keys=("data.fit", "data.stream"))
    if decode or fit == "tiles":
        good, decoding = [], Decoding(Each(readable, dataset.read, workers=dataset.workers, keep=not streaming),
                                      per_file, dataset.shape[1:])
        for i, error in decoding:  # every file once, in order, the images held straight into one tensor
            if error is None:
                good.append(i)
            else:
                bad(str(error))
        dataset.workers = decoding.each.workers  # 0 where shared memory was short: the streamed files start none either
        _no_usable_image(folder, good, skipped)
        images = dataset.subset(good) if streaming else decoding.result
    else:  # each file decoded when asked for, unchecked
        good, images = list(range(len(readable))), dataset

    good_files = [readable[i] for i in good]
    labels, label_names = _labels(folder, good_files)
    data = ImageData(
        images=images,
        labels=labels,
        names=relative_names(good_files, folder),
        source=str(folder),
        label_names=label_names,
        skipped=skipped,
    )
    if fit == "tiles":
        sizes = {f: info.size for f, info in zip(readable, infos)}
        return tiled(data, data.images, decoding.counts, [sizes[f] for f in good_files], size)
    return data


_IGNORED = ("other files", "hidden images (names starting with '.')", "second names (links) of an image listed",
            "entries that are not regular files (pipes, sockets, devices)")


def image_files(folder: Path) -> tuple[list[str], str]:
    """The image files under ``folder``, in the order of their names (:func:`by_name`), and what was ignored, said for an error message ("" when
    nothing was): other files, hidden ones (names starting with "."), and a second name of a file already
    listed (a link to an image in the same tree is one image, so it cannot land on both sides of a split).
    Subfolders that are symbolic links are followed (a training set made of links to other folders), except
    a link back to a folder above it, which would loop."""
    files, seen, counts, top = [], set(), dict.fromkeys(_IGNORED, 0), os.fspath(folder)
    above = {top: {os.path.realpath(top)}}  # each folder to walk: the real folders above it and itself
    for root, dirs, names in os.walk(top, followlinks=True):
        chain, kept = above.pop(root), []
        for d in sorted(dirs):
            real = os.path.realpath(os.path.join(root, d))
            if not d.startswith(".") and real not in chain:
                above[os.path.join(root, d)] = chain | {real}
                kept.append(d)
        dirs[:] = kept
        for name in names:
            if not name.lower().endswith(IMAGE_SUFFIXES):
                counts[_IGNORED[0]] += 1
            elif name.startswith("."):
                counts[_IGNORED[1]] += 1
            elif os.path.exists(path := os.path.join(root, name)) and not os.path.isfile(path):  # reading would block
                counts[_IGNORED[3]] += 1
            else:
                files.append(os.path.join(root, name))
    unique = []
    for f in by_name(files, top):
        real = os.path.realpath(f)
        if real in seen:
            counts[_IGNORED[2]] += 1
        else:
            seen.add(real)
            unique.append(f)
    ignored = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
    return unique, ignored and f"ignored: {ignored}"


def relative_names(files, top, path=os.path) -> list[str]:
    """The name of each of ``files``, under the folder ``top``: its path relative to ``top`` with "/" between folders,
    in Unicode NFC form, so that a folder's names, hence their order, labels and splits, are the same on every
    system (Windows' "\\"; macOS may give the NFD form of accented letters). ``path``: the os.path module of the
    system the paths are of (``ntpath``: Windows')."""
    return [unicodedata.normalize("NFC", path.relpath(f, top).replace(path.sep, "/")) for f in files]


def by_name(files, top, path=os.path) -> list[str]:
    """``files`` (paths under ``top``, as :func:`relative_names` takes them) sorted by their names."""
    return [f for _, f in sorted(zip(relative_names(files, top, path), files))]


def find_images(inputs) -> list[tuple[Path, Path]]:
    """(file, name) for every image file named in ``inputs`` or found (recursively) in a named folder;
    ``name`` is the file's path relative to its folder (or its own name), for outputs that mirror the inputs."""
    found: list[tuple[Path, Path]] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            files, ignored = image_files(p)
            if not files:
                others = f" ({ignored})" if ignored else ""
                raise DataError(f"{p}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder{others}")
            found += [(Path(f), Path(f).relative_to(p)) for f in files]
        elif p.is_file():
            found.append((p, Path(p.name)))
        else:
            raise DataError(f"{p}: no such image file or folder")
    if not found:
        raise DataError("no input images given")
    return found


def _no_usable_image(folder: Path, usable: list, skipped: list[str]) -> None:
    if not usable:
        raise DataError(
            f"data.source {folder}: no usable image: all {len(skipped)} image files are unreadable "
            f"(first: {skipped[0]})", keys="data.source",
        )


def _common_size(folder: Path, files: list[str], infos: list[ImageInfo]) -> tuple[int, int]:
    first = infos[0].size
    for f, info in zip(files, infos):
        if info.size != first:
            raise DataError(
                f"data.source {folder}: images differ in size ({files[0]} is {first[0]}x{first[1]}, "
                f"{f} is {info.size[0]}x{info.size[1]}); give a working size (data.size HxW; with data.fit "
                "tiles a denoiser learns from every window of it at the native resolution)",
                keys=("data.source", "data.size", "data.fit"),
            )
    return first


def _labels(folder: Path, files: list[str]) -> tuple[np.ndarray | None, list[str] | None]:
    parents = [name.rpartition("/")[0] or "." for name in relative_names(files, folder)]
    if all(p == "." for p in parents):
        return None, None
    names = sorted(set(parents))
    code = {name: i for i, name in enumerate(names)}
    return np.array([code[p] for p in parents], dtype=np.int64), names
