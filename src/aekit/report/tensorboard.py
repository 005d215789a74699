"""``--tensorboard``: a run's scalars and reconstruction grids, written with TensorBoard's writer.

    RUN/tensorboard/   one event file; view it with ``tensorboard --logdir RUN/tensorboard``

Scalars every epoch: ``train/loss_per_sample``, ``train/code_mean``, ``train/code_std``,
``train/seconds``, and ``heldout/<metric>`` on the epochs where held-out metrics are computed.
Images on those epochs (every ``train.eval_every`` epochs without a held-out set, and the last):
``reconstructions``, a few images above their reconstructions. TensorBoard is an optional extra,
imported here only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import take
from ..errors import AekitError
from ..training import EpochStats
from .pictures import image_grid

GRID_IMAGES = 8  # images in the reconstruction grid


class TensorBoardLog:
    """Writes each epoch's record (the training loop's ``on_epoch`` hook calls :meth:`log_epoch`)."""

    def __init__(self, folder: str | Path, model: torch.nn.Module, images: torch.Tensor, *, every: int, last: int):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise AekitError(
                "train.tensorboard needs the tensorboard package: pip install 'aekit[tensorboard]'", keys="train.tensorboard"
            ) from None
        if Path(folder).is_symlink():  # a run folder may come from anywhere: its events go into the run only
            raise AekitError(f"{folder}: is a link to {Path(folder).resolve()}, not the run's own folder for its "
                             "TensorBoard events; remove the link", keys="train.tensorboard")
        self.writer = SummaryWriter(log_dir=str(folder))
        self.model, self.images = model, take(images, range(min(GRID_IMAGES, len(images))))  # a streaming Dataset too
        self.every, self.last = every, last

    @classmethod
    def for_run(cls, cfg, folder, model: torch.nn.Module, data) -> "TensorBoardLog":
        """The log of a run in ``folder`` (a RunFolder): grids of its first held-out (else training) images."""
        images = data.test_x if len(data.test_x) else data.train_x
        return cls(folder / folder.TENSORBOARD, model, images, every=cfg.train.eval_every, last=cfg.train.epochs)

    def log_epoch(self, stats: EpochStats) -> None:
        add = self.writer.add_scalar
        for key in ("loss_per_sample", "code_mean", "code_std", "seconds"):
            add(f"train/{key}", getattr(stats, key), stats.epoch)
        for key, value in stats.heldout.items():
            add(f"heldout/{key}", value, stats.epoch)
        for key, value in (stats.validation or {}).items():  # what model selection follows
            add(f"validation/{key}", value, stats.epoch)
        e = stats.epoch
        if stats.heldout or e == self.last or (self.every and e % self.every == 0):
            grid = np.asarray(self.reconstruction_grid())
            self.writer.add_image("reconstructions", grid, e, dataformats="HW" if grid.ndim == 2 else "HWC")
        self.writer.flush()  # a killed run keeps what it logged

    @torch.no_grad()
    def reconstruction_grid(self):
        """Images (top row) above the model's reconstructions, as a PIL picture."""
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        recon = self.model(self.images.to(device)).recon.float().cpu()
        self.model.train(was_training)
        return image_grid([self.images, recon])

    def close(self) -> None:
        self.writer.close()
