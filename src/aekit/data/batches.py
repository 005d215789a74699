"""Batches of images: the training loop's passes, and running a model over many images.

Both kinds of image collection are served: an in-memory (N, C, H, W) tensor, and a streaming
Dataset of (C, H, W) items (:class:`aekit.data.folders.ImageFiles`) read by a DataLoader.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import default_collate

from .container import take
from .decoding import BATCH
from .workers import load_batches

CPU_BATCH = 32  # images per forward pass on a CPU: the activations stay in cache (measured: 1.5x faster than 256)
DEVICE_BATCH = 256  # images per forward pass on an accelerator


def inference_batch_size(device: torch.device | str) -> int:
    """Images per forward pass when running a model over many images (not training) on ``device``."""
    return CPU_BATCH if torch.device(device).type == "cpu" else DEVICE_BATCH


def epoch_batches(
    images: "torch.Tensor | torch.utils.data.Dataset",
    batches: Sequence[torch.Tensor],
) -> Iterator[torch.Tensor]:
    """The clean batches of one pass, ``images[index]`` for each index tensor in ``batches``.

    An in-memory tensor is indexed (on its own device). A Dataset (a streaming :class:`ImageFiles`)
    is read by a DataLoader whose batches follow exactly those indices, with ``images.workers``
    worker processes decoding ahead (in this process where shared memory is short: :mod:`aekit.data.workers`);
    a DataError raised in a worker comes back as one line.
    """
    if isinstance(images, torch.Tensor):
        for index in batches:
            yield images[index.to(images.device)]
        return
    largest = max((len(index) for index in batches), default=0)
    item_bytes = int(np.prod(images.shape[1:])) * 4 if hasattr(images, "shape") else 0
    yield from load_batches(images, [index.tolist() for index in batches], default_collate,
                            batch_bytes=largest * item_bytes)


def in_batches(images, batch_size: int) -> Iterator[torch.Tensor]:
    """``images`` (a tensor or a streaming Dataset) as consecutive batches of ``batch_size``, in order."""
    n = len(images)
    return epoch_batches(images, [torch.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)])


def gather(images, index) -> torch.Tensor:
    """The images at ``index`` as one (B, C, H, W) tensor, as :func:`take` gives them; a streaming dataset is read
    by its worker processes, as in training, a batch at a time into one tensor made up front."""
    if isinstance(images, torch.Tensor):
        return take(images, index)
    index = torch.as_tensor(np.asarray(index, dtype=np.int64)).reshape(-1)
    out = torch.empty(len(index), *images.shape[1:])
    for start, batch in zip(range(0, len(index), BATCH), epoch_batches(images, list(index.split(BATCH)))):
        out[start : start + len(batch)] = batch
    return out


@torch.no_grad()
def map_batches(fn: Callable[[torch.Tensor], torch.Tensor], images, device: torch.device | str,
                batch_size: int | None = None) -> torch.Tensor:
    """``fn`` over ``images`` in batches on ``device`` (default batch: :func:`inference_batch_size`);
    the outputs concatenated on the CPU in float32."""
    device = torch.device(device)
    size = batch_size or inference_batch_size(device)
    outs = [fn(batch.to(device)).float().cpu() for batch in in_batches(images, size)]
    return torch.cat(outs) if outs else torch.empty(0)
