"""The resume rules: what a resume may change, that the run's config.toml still builds the model its checkpoint
holds, and what a resume clears away first."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict
from pathlib import Path

from .config import AUTO_KEYS, Config, resumable_keys
from .errors import AekitError
from .models.registry import meta_model
from .models.io import read_model_json
from .run_folder import RunFolder
from .training.checkpoints import STATE, others
from .training.snapshot import StateError
from .typed import flatten, to_plain

STALE_SECONDS = 600  # a temporary file this old was left by a write that a kill stopped


def check_resume(folder: RunFolder, cfg: Config) -> None:
    """A resume keeps the run's configuration, except for the settings declared resumable
    (:func:`aekit.config.resumable_keys`)."""
    own = flatten(folder.config().to_dict())
    may = resumable_keys()
    for key, value in flatten(cfg.to_dict()).items():
        if key not in may and own.get(key) != value and not (key in AUTO_KEYS and value == "auto"):
            raise AekitError(
                f"resume {folder.path}: {key} differs from the run's {folder.CONFIG} ({own.get(key)!r} there, "
                f"{value!r} now); resuming may only change {', '.join(sorted(may))}", keys="resume",
            )


def schedule_note(folder: RunFolder, cfg: Config) -> str | None:
    """A resume that changes train.epochs under a cosine schedule, in words (else None): the decay follows the new
    count from the resumed step, so the learning rate jumps (a finished decay rises again)."""
    before = folder.config().train.epochs
    if cfg.train.schedule != "cosine" or cfg.train.epochs == before:
        return None
    return (f"note: train.schedule cosine decays over train.epochs: from here the learning rate follows the cosine of "
            f"{cfg.train.epochs} epochs, not of {before} (a finished decay rises again); not the model a run of "
            f"{cfg.train.epochs} epochs from the start gives")


def check_checkpoint(folder: RunFolder, cfg: Config, checkpoint: Path) -> None:
    """The model ``cfg`` builds is the one ``checkpoint`` holds: a key edited or deleted in config.toml
    (a deleted one reads as its default) would otherwise fail deep inside the resume, or train another model."""
    saved = read_model_json(checkpoint).get("config")
    if not isinstance(saved, dict):
        return
    now = to_plain(asdict(meta_model(cfg.model).config))  # checked, with no memory for its weights
    for key, value in now.items():
        if key in saved and saved[key] != value:
            raise AekitError(
                f"resume {folder.path}: model.{key} is {value!r} by its {folder.CONFIG} (edited, or missing and so "
                f"its default), but checkpoint {checkpoint.name} was trained with {saved[key]!r}; set it back "
                f"in {folder / folder.CONFIG} ([model] {key} = {json.dumps(saved[key])})", keys="resume")


def unfit_state(folder: RunFolder, checkpoint: Path, e: StateError) -> AekitError:
    """``e``, a part of ``checkpoint``'s state.pt that does not fit the training (a foreign optimiser, a value of
    another type), as one line naming the file, the checkpoints a resume could start from instead, and a new start."""
    instead = others(folder.path, checkpoint)
    return AekitError(f"{checkpoint / STATE}: {e}: damaged, or of another run{instead}; {'or ' if instead else ''}"
                      f"start it afresh in {folder.path} from config {folder / folder.CONFIG} with overwrite",
                      keys=("overwrite", "config"))


def clear_for_resume(folder: RunFolder, older_than: float = STALE_SECONDS) -> None:
    """What a resume leaves behind: the evaluation of the model it replaces (the report would show it as the new
    model's), and the temporary files of writes a kill stopped (``.aekit-XXXXXXXX.tmp``; ``.NAME.XXXX.tmp`` from
    older versions; not recent ones, which another command may be writing now)."""
    for name in (folder.EVALUATION, Path(folder.EVALUATION).with_suffix(".png").name):
        (folder / name).unlink(missing_ok=True)
    for tmp in folder.path.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - tmp.lstat().st_mtime > older_than:
                tmp.unlink()
