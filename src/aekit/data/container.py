"""The image container every source returns, and selecting images from it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass
class ImageData:
    images: torch.Tensor | Dataset  # (N, C, H, W) float32 in [0, 1] at the source's native resolution
    # (folders: fitted to the working size as read); when streaming, a folders.ImageFiles dataset of (C, H, W) items
    labels: np.ndarray | None = None  # (N,) integer labels (Olivetti: the person; folders: the subfolder), or None
    names: list[str] | None = None  # one name per image (file paths relative to a folder)
    source: str = ""  # where the images came from
    label_names: list[str] | None = None  # the name of each label value (folders: subfolder paths)
    skipped: list[str] = field(default_factory=list)  # unreadable files left out (skip_bad), as "path: reason"
    symmetric: bool = False  # mirror images are images of the same kind (aligned faces): train.hflip "auto" flips them
    groups: np.ndarray | None = None  # (N,) the image each was cut from (data.fit tiles): splits keep a group together

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
            symmetric=self.symmetric,
            groups=None if self.groups is None else self.groups[index],
        )


def select(images: torch.Tensor | Dataset, index) -> torch.Tensor | Dataset:
    """The images at ``index``, of the same kind: a tensor, or a streaming dataset."""
    if isinstance(images, torch.Tensor):
        return images[torch.as_tensor(np.asarray(index, dtype=np.int64))]
    return images.subset(index)


def take(images: torch.Tensor | Dataset, index) -> torch.Tensor:
    """The images at ``index`` as one (B, C, H, W) tensor (a streaming dataset decodes them)."""
    if isinstance(images, torch.Tensor):
        return select(images, index)
    return torch.stack([images[int(i)] for i in index])
