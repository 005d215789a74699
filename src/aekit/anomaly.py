"""Anomaly screening: per-image reconstruction error, flagged above a threshold taken from the run's
own held-out images (``aekit score``)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .config import replace
from .data import gather, map_batches
from .errors import AekitError, DataError
from .files import write_text
from .latent import as_model, read_inputs
from .run_folder import RunFolder

DEFAULT_QUANTILE = 0.99  # of the held-out errors: the threshold when none is given


@dataclass
class Scores:
    files: list[Path]
    errors: np.ndarray  # (N,) per-image mean squared error of the reconstruction
    threshold: float  # errors above it are flagged
    quantile: float | None  # the held-out quantile the threshold came from (None: given)
    heldout_images: int  # held-out images the threshold was computed on (0: given)
    skipped: list[str] = field(default_factory=list)  # unreadable files left out (skip_bad)

    @property
    def flags(self) -> np.ndarray:
        return self.errors > self.threshold


def reconstruction_errors(model: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    """Per-image mean squared error between images and their reconstructions."""
    def errors(x: torch.Tensor) -> torch.Tensor:
        return (model(x).recon.float() - x).square().flatten(1).mean(1)

    return map_batches(errors, images, next(model.parameters()).device).numpy()


def heldout_threshold(run: str | Path | RunFolder, model: torch.nn.Module, quantile: float,
                      workers: int | None = None) -> tuple[float, int]:
    """The ``quantile`` of the reconstruction errors on the run's own held-out split (``workers``: the worker
    processes that decode a folder's images; None: the run's data.workers)."""
    folder = run if isinstance(run, RunFolder) else RunFolder(run)
    cfg = replace(folder.config(), **{"data.workers": workers})
    try:
        data = folder.own_data(cfg, "score's held-out threshold")
    except DataError as e:
        raise folder.data_gone(e, cfg.data.source, why="give threshold, the MSE above which an image is flagged "
                               "(else the quantile of the errors on its held-out images)", keys=("threshold",)) from None
    if not len(data.test_x):
        raise AekitError(
            f"{folder}: the run has no held-out images (test_fraction 0) to take the quantile from; give "
            "threshold (the MSE above which an image is flagged)", keys="threshold",
        )
    errors = reconstruction_errors(model, gather(data.fitted, data.test_index))  # a folder's: only those decoded
    return float(np.quantile(errors, quantile)), len(errors)


def score(run, inputs: Sequence[str | Path], *, quantile: float | None = None, threshold: float | None = None,
          device: str = "cpu", skip_bad: bool = False, progress: bool | None = None,
          workers: int | None = None) -> Scores:
    """Per-image reconstruction error of ``inputs``, flagged above a threshold: ``threshold`` when
    given, else the ``quantile`` (default DEFAULT_QUANTILE, 0.99) of the errors on the run's held-out images (``skip_bad``:
    unreadable files are left out, listed in ``Scores.skipped``; ``progress``: a bar over the files read, None: when
    stderr is a terminal; ``workers``: the worker processes that decode many files, as training reads a folder
    (data.workers; None: one per CPU core, at most 4, and the run's own for its held-out images))."""
    if quantile is not None and threshold is not None:
        raise AekitError("quantile and threshold: give one, not both (each sets the level above which an image is "
                         "flagged)", keys=("quantile", "threshold"))
    quantile = DEFAULT_QUANTILE if quantile is None else quantile
    if not 0 < quantile <= 1:
        raise AekitError(f"quantile must lie in (0, 1], got {quantile}", keys="quantile")
    if threshold is not None and not threshold >= 0:  # a mean squared error: below 0 would flag every image
        raise AekitError(f"threshold must be 0 or more (a mean squared error), got {threshold}", keys="threshold")
    if isinstance(run, torch.nn.Module) and threshold is None:
        raise AekitError("score: a model without its run folder needs a threshold", keys="threshold")
    model = as_model(run, device)
    x, files, skipped = read_inputs(model, inputs, skip_bad=skip_bad, progress=progress, workers=workers)
    errors = reconstruction_errors(model, x)
    if threshold is not None:
        return Scores(files, errors, float(threshold), None, 0, skipped)
    t, n = heldout_threshold(run, model, quantile, workers)
    return Scores(files, errors, t, quantile, n, skipped)


def write_scores(scores: Scores, out: str | Path) -> Path:
    """scores.csv: file, mse, threshold, flag (1 above the threshold)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "mse", "threshold", "flag"])
    for f, e, flag in zip(scores.files, scores.errors, scores.flags):
        w.writerow([str(f), f"{e:.6g}", f"{scores.threshold:.6g}", int(flag)])
    write_text(out, buf.getvalue())
    return Path(out)
