"""What fit() refuses, checked before anything is written, and the batch a step takes."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..config import TrainConfig
from ..errors import ConfigError, DataError
from ..typed import build, to_plain
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


def train_config(config) -> TrainConfig:
    """fit's ``config``: a TrainConfig, its fields' types and choices checked as a config file's are, a
    dict of its fields, or None (the defaults)."""
    if config is None:
        return TrainConfig()
    if isinstance(config, TrainConfig):
        config = to_plain(dataclasses.asdict(config))
    if not isinstance(config, dict):
        raise ConfigError(f"config: expected an aekit.TrainConfig, a dict of its fields or None, got "
                          f"{type(config).__name__}", keys="config")
    return build(TrainConfig, config, "train")


NAMES = ("train_images", "val_images", "test_images")


def user_images(model: torch.nn.Module, *sets, names: tuple[str, ...] = NAMES):
    """Image sets given straight to :func:`fit` or :func:`evaluate` (without a pipeline that fits them), each
    checked: a NumPy array becomes a tensor, floats become float32, and what the model cannot take is a
    one-line error naming the set (None and streaming Datasets pass as they are). A tuple, or one set."""
    checked = tuple(_user_images(model, x, name) for x, name in zip(sets, names))
    return checked if len(checked) > 1 else checked[0]


def _user_images(model: torch.nn.Module, images, name: str):
    if isinstance(images, (list, tuple)):  # a list of images: stacked into one array
        try:
            images = torch.stack([torch.as_tensor(np.asarray(i)) for i in images])
        except (RuntimeError, TypeError, ValueError) as e:
            raise DataError(f"{name}: a list that does not stack into one (N, C, H, W) array "
                            f"({str(e).splitlines()[0]})") from None
    if images is None or not isinstance(images, (np.ndarray, torch.Tensor)):
        return images
    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    c = model.config
    want = f"(N, {c.in_channels}, H, W) floats in [0, 1]"
    if len(x) == 0:
        raise DataError(f"{name}: no images")
    if x.ndim != 4 or not x.dtype.is_floating_point:
        raise DataError(f"{name}: got {tuple(x.shape)} {str(x.dtype).replace('torch.', '')}; the model takes {want} "
                        "(aekit.load_data reads and scales files and arrays)")
    if x.shape[1] != c.in_channels:
        raise DataError(f"{name}: {x.shape[1]} channels; the model takes {c.in_channels} (model.in_channels)")
    if not model.any_size and tuple(x.shape[-2:]) != tuple(c.input_size):
        raise DataError(f"{name}: {x.shape[-2]}x{x.shape[-1]} images; the {c.name} model takes "
                        f"{c.input_size[0]}x{c.input_size[1]} (aekit.resize fits them)")
    bad = ~torch.isfinite(x).flatten(1).all(1)
    if bad.any():
        raise DataError(f"{name}: NaN or Inf in image {int(bad.nonzero()[0])} (and {int(bad.sum()) - 1} more)")
    lo, hi = float(x.min()), float(x.max())
    if not (0 <= lo and hi <= 1):
        raise DataError(f"{name}: values lie in [{lo:g}, {hi:g}], outside [0, 1]: scale them (e.g. divide by 255)")
    return x.float()
