"""What fit() refuses, checked before anything is written, and the batch a step takes."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .devices import autocast_for, resolve_device
from .distributed import Distributed
from .optim import batch_starts


def batch_size(config, n: int) -> int:
    """The batch a step takes: ``train.batch_size``, or all ``n`` images when there are fewer (as
    PyTorch's DataLoader and Keras do); the reference loop keeps its quirk and needs more than a batch."""
    return config.batch_size if config.reference_loop else min(config.batch_size, n)


def preflight(config, n: int, dist: Distributed | None = None) -> torch.device:
    """The device training runs on, once the settings are checked against ``n`` training images and the
    processes: what :func:`fit` refuses, found before anything is written (``aekit.train`` calls it first)."""
    dist = dist or Distributed.current()
    device = resolve_device(config.device)
    if n < 1 or len(batch_starts(n, batch_size(config, n), config.reference_loop)) == 0:
        raise ConfigError(
            f"train.batch_size {config.batch_size} is larger than the {n} training images"
            + (" (the reference loop needs more than one batch)" if config.reference_loop else ""),
            keys="train.batch_size",
        )
    if batch_size(config, n) < dist.world:
        raise ConfigError(
            f"train.batch_size {config.batch_size} is smaller than the {dist.world} processes: "
            "every process needs at least one sample of each batch", keys="train.batch_size",
        )
    autocast_for(config.amp, device)
    if dist.world > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # this process's GPU (LOCAL_RANK)
    return device
