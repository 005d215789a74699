"""The record of a training run: one EpochStats per epoch, the epoch line, and history.csv's columns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EpochStats:
    epoch: int
    loss_per_sample: float  # summed per-sample losses / number of training images
    code_mean: float  # mean over batches of the batch's mean code activation
    code_std: float  # mean over batches of the per-unit std of the code across the batch (~0: collapsed)
    seconds: float  # wall time of the epoch's training steps
    heldout: dict[str, float] = field(default_factory=dict)  # loss_per_sample, code_mean, mse, psnr, ssim
    code_small: float | None = None  # fraction of code values with |value| < metrics.SMALL_ACTIVATION (0.1)


HELDOUT_COLUMNS = ("loss_per_sample", "code_mean", "mse", "psnr", "ssim")  # held-out figures in history.csv
HISTORY_COLUMNS = ["epoch", "loss_per_sample", "code_mean", "code_std", *(f"heldout_{k}" for k in HELDOUT_COLUMNS),
                   "seconds", "code_small"]


def history_row(s: EpochStats) -> dict:
    """One row of history.csv (None: not computed that epoch)."""
    row = {"epoch": s.epoch, "loss_per_sample": s.loss_per_sample, "code_mean": s.code_mean, "code_std": s.code_std,
           "seconds": round(s.seconds, 4), "code_small": s.code_small}
    row.update({f"heldout_{k}": s.heldout.get(k) for k in HELDOUT_COLUMNS})
    return {k: row[k] for k in HISTORY_COLUMNS}


class History(list):
    """The records of every epoch so far; ``stopped`` says why training ended early, if it did."""

    stopped: str | None = None


def format_epoch(s: EpochStats) -> str:
    """The reference's line, plus held-out figures when they were computed."""
    line = f"Epoch {s.epoch}) Average loss per sample: {s.loss_per_sample:.4f} (Code mean: {s.code_mean:.4f})"
    if s.heldout:
        h = s.heldout
        line += (
            f"  [held-out: loss per sample {h['loss_per_sample']:.4f}, "
            f"PSNR {h['psnr']:.2f} dB, SSIM {h['ssim']:.4f}]"
        )
    return line
