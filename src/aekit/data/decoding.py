"""Decoding many image files at once, in order: by DataLoader worker processes (:mod:`aekit.data.workers`),
into one tensor made up front.

A folder's check (:func:`aekit.data.load_folder`) and the files that ``aekit encode`` and ``score`` read come
through here. Each file gives a number of images known beforehand (one, or a folder's tiles, counted from
its header), so the tensor for all of them is made once and each batch is copied into it as it comes:
decoding N images takes their size and a few batches, where a list of batches joined at the end took twice
their size. A file that cannot be decoded does not stop its batch: it comes back as its error, which the
caller raises or skips, in the files' order.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import torch

from ..errors import AekitError, DataError, skip_bad_hint
from .workers import load_batches, worker_count

BATCH = 64  # files per DataLoader batch


class Each(torch.utils.data.Dataset):
    """Item i: (``read(files[i])``, None), or (None, the AekitError it raised); without ``keep``, the image
    read is dropped (a check). ``workers``: the worker processes that decode it (0: this process)."""

    def __init__(self, files: Sequence, read: Callable, *, workers: int | None, keep: bool = True):
        self.files, self.read, self.workers, self.keep = list(files), read, worker_count(workers), keep

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, AekitError | None]:
        try:
            image = self.read(self.files[i])
        except AekitError as e:
            return None, e
        return (image if self.keep else None), None


class Decoding:
    """The files of ``each`` decoded in order; iterating gives (file index, its error or None) for each file.
    ``per_file``: the images each file gives (1, or its tiles), each of ``shape`` (C, H, W). As it goes,
    ``images`` fills with the images of the files without an error, one after another (``counts``: how many
    each gave); the room of the files that failed is left over at the end (:attr:`result` leaves it out)."""

    def __init__(self, each: Each, per_file: Sequence[int], shape: tuple[int, ...]):
        self.each, self.per_file, self.shape = each, list(per_file), tuple(shape)
        self.images = torch.empty(sum(self.per_file), *self.shape) if each.keep else None
        self.counts: list[int] = []
        self.filled = 0

    def __iter__(self) -> Iterator[tuple[int, AekitError | None]]:
        n = len(self.each)
        starts = range(0, n, BATCH)
        largest = max((sum(self.per_file[s : s + BATCH]) for s in starts), default=0)
        batch_bytes = largest * 4 * math.prod(self.shape) if self.each.keep else 0
        batches = load_batches(self.each, [range(s, min(s + BATCH, n)) for s in starts], _stack, batch_bytes=batch_bytes)
        for start, (images, errors) in zip(starts, batches):
            if images is not None:
                self._put(*images)
            yield from enumerate(errors, start)

    def _put(self, images: torch.Tensor, counts: list[int]) -> None:
        end = self.filled + len(images)
        if end > len(self.images):  # more than the headers said (a file's size read otherwise): room for them
            self.images = torch.cat([self.images[: self.filled], images.new_empty(end - self.filled, *self.shape)])
        self.images[self.filled : end] = images
        self.filled = end
        self.counts.extend(counts)  # in place: a new list per batch copied every count so far, quadratic

    @property
    def result(self) -> torch.Tensor:
        """The images decoded (a view of :attr:`images`: no copy)."""
        return self.images[: self.filled]


def _stack(items: list) -> tuple[tuple[torch.Tensor, list[int]] | None, list[AekitError | None]]:
    """A batch's good images as one tensor and how many each file gave (1, or its tiles), and the errors.
    A worker makes the tensor in shared memory, as DataLoader's batches are: where it cannot, the worker fails."""
    images, errors = [x if x.dim() == 4 else x[None] for x, _ in items if x is not None], [e for _, e in items]
    shared = images and torch.utils.data.get_worker_info() is not None  # else the hand-over fails later, and hangs
    out = torch.empty(sum(map(len, images)), *images[0].shape[1:]).share_memory_() if shared else None
    return ((torch.cat(images, out=out), [len(x) for x in images]) if images else None), errors


def read_each(found: list[tuple], read: Callable, *, shape: tuple[int, ...], skip_bad: bool | None, inputs,
              workers: int | None = None, moving=None) -> tuple[torch.Tensor, list, list[str]]:
    """``read(file)`` for each (file, name) of ``found`` (:func:`aekit.data.find_images` of ``inputs``), each one
    image of ``shape`` (C, H, W): the images as one tensor, the (file, name) pairs read, and the unreadable files
    skipped. An unreadable file is left out and listed with ``skip_bad``; without, it stops everything (False: its
    error points to ``skip_bad``). None readable: an error. ``workers`` decode them where there is more than one
    batch of files (``data.workers``: None, one per CPU core, at most 4); ``moving``: a bar moved by each file."""
    if workers is not None and workers < 0:
        raise DataError(f"data.workers must be 0 or more, got {workers}", keys="data.workers")
    each = Each([f for f, _ in found], read, workers=workers if len(found) > BATCH else 0)
    decoding, kept, skipped = Decoding(each, [1] * len(found), shape), [], []
    for i, error in decoding:
        if moving is not None:
            moving.update()
        if error is None:
            kept.append(found[i])
        elif skip_bad is None:
            raise error
        elif not skip_bad:
            raise skip_bad_hint(error) from None
        else:
            skipped.append(str(error))
    if not kept:
        raise DataError(f"{' '.join(map(str, inputs))}: no readable image ({len(skipped)} skipped)")
    return decoding.result, kept, skipped
