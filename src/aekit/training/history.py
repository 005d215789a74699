"""The record of a training run: one EpochStats per epoch, the epoch line, and history.csv (written and read)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AekitError


@dataclass
class EpochStats:
    epoch: int
    loss_per_sample: float  # summed per-sample losses / number of training images
    code_mean: float  # mean over batches of the batch's mean code activation
    code_std: float  # mean over batches of the per-unit std of the code across the batch (~0: collapsed)
    seconds: float  # wall time of the epoch's training steps
    heldout: dict[str, float] = field(default_factory=dict)  # loss_per_sample, code_mean, mse, psnr, ssim
    code_small: float | None = None  # fraction of code values with |value| < metrics.SMALL_ACTIVATION (0.1)
    validation: dict[str, float] = field(default_factory=dict)  # train.select: the same figures on the validation split


GENERATIVE_COLUMNS = ("nelbo", "bits_per_dim", "kl", "active_units")  # held-out figures of a generative model (VAE)
HELDOUT_COLUMNS = ("loss_per_sample", "code_mean", "mse", "psnr", "ssim", *GENERATIVE_COLUMNS)  # in history.csv
VALIDATION_COLUMNS = ("loss_per_sample", "psnr", "ssim")  # validation figures in history.csv (train.select)
HISTORY_COLUMNS = ["epoch", "loss_per_sample", "code_mean", "code_std", *(f"heldout_{k}" for k in HELDOUT_COLUMNS),
                   "seconds", "code_small", *(f"val_{k}" for k in VALIDATION_COLUMNS)]


def history_columns(history: list[EpochStats]) -> list[str]:
    """history.csv's columns for ``history``: the generative and validation ones only where some epoch has them."""
    optional = {f"heldout_{k}" for k in GENERATIVE_COLUMNS if not any(k in s.heldout for s in history)}
    optional |= {f"val_{k}" for k in VALIDATION_COLUMNS if not any(k in s.validation for s in history)}
    return [c for c in HISTORY_COLUMNS if c not in optional]


def history_row(s: EpochStats) -> dict:
    """One row of history.csv (None: not computed that epoch)."""
    row = {"epoch": s.epoch, "loss_per_sample": s.loss_per_sample, "code_mean": s.code_mean, "code_std": s.code_std,
           "seconds": round(s.seconds, 4), "code_small": s.code_small}
    row.update({f"heldout_{k}": s.heldout.get(k) for k in HELDOUT_COLUMNS})
    row.update({f"val_{k}": s.validation.get(k) for k in VALIDATION_COLUMNS})
    return {k: row[k] for k in HISTORY_COLUMNS}


class History(list):
    """The records of every epoch so far; ``stopped`` says why training ended early, if it did."""

    stopped: str | None = None
    selection: dict | None = None  # train.select: the chosen epoch (0: the start), its validation loss, the start's


def format_epoch(s: EpochStats) -> str:
    """The reference's line, plus held-out and validation figures when they were computed."""
    line = f"Epoch {s.epoch}) Average loss per sample: {s.loss_per_sample:.4f} (Code mean: {s.code_mean:.4f})"
    if s.heldout:
        h = s.heldout
        line += (
            f"  [held-out: loss per sample {h['loss_per_sample']:.4f}, "
            f"PSNR {h['psnr']:.2f} dB, SSIM {h['ssim']:.4f}]"
        )
    if s.validation:
        line += f"  [validation: {s.validation['loss_per_sample']:.4f}, {s.validation['psnr']:.2f} dB]"
    return line


@dataclass
class EpochContext:
    """What the ``on_epoch`` hook of :func:`~aekit.training.fit` sees after every epoch."""

    stats: EpochStats  # this epoch's record (also the last item of ``history``)
    history: History  # every epoch so far, a resumed run's earlier epochs included
    trainer: Any  # the loop's state (aekit.training.loop._Trainer)

    def snapshot(self) -> dict:
        """The full training state (for a checkpoint): collective under torch.distributed."""
        return self.trainer.snapshot()

    def agree(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on any (decisions that depend on a clock)."""
        return self.trainer.dist.agree(flag, self.trainer.device)


def history_csv(history: list[EpochStats]) -> str:
    """history.csv's text: a header, then one row per epoch (empty cells for figures an epoch lacks)."""
    buf = io.StringIO()
    columns = history_columns(history)
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for s in history:
        row = history_row(s)
        w.writerow({k: ("" if row[k] is None else row[k]) for k in columns})
    return buf.getvalue()


def read_history_csv(path: Path) -> list[dict[str, float | None]]:
    """history.csv as one dict per epoch: numbers, and None for empty cells ([] when there is none)."""
    fix = "delete it, and the report leaves the loss curves out"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        why = f"not UTF-8 text (byte {e.start})" if isinstance(e, UnicodeDecodeError) else e
        raise AekitError(f"{path}: damaged ({why}); {fix}") from None
    try:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in rows]
    except (ValueError, TypeError) as e:
        raise AekitError(f"{path}: not a history file of numbers ({e}); {fix}") from None
