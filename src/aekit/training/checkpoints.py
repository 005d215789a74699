"""Checkpoints that survive a kill at any moment, and load without unpickling code.

Layout inside a run folder::

    checkpoints/
      epoch-000012/          one checkpoint: model.json + model.safetensors (loadable by aekit.load: the
                             weights as validated, the average with train.ema) + state.pt (the weights
                             training continues from, optimiser, scheduler, epoch, history, random states)
      last.json              {"dir": "epoch-000012", "epoch": 12}  -> the newest checkpoint
      best.json              the epoch model selection keeps so far (the lowest validation loss)

A checkpoint folder is written under a temporary name and renamed into place when complete; the
pointer files are then replaced atomically. A kill at any moment leaves the previous pointers and
the folders they name intact. ``state.pt`` holds only tensors and plain values and is read with
``torch.load(weights_only=True)``, which refuses to run code from a planted pickle.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import AekitError
from ..files import WriteError, usual_mode, write_bytes, write_json, writing
from ..models.io import MODEL_WEIGHTS, save, weights_problem

FOLDER = "checkpoints"
STATE = "state.pt"
POINTERS = ("last", "best")  # RUN/checkpoints/NAME.json: the newest checkpoint, and the one selection keeps
# What a resume reads from state.pt (the training loop's snapshot), by type: the keys every one holds, then those
# that may be None or absent
STATE_KEYS = {"epoch": int, "optimizer": dict, "scheduler": dict, "shuffle_rng": torch.Tensor,
              "torch_rng": torch.Tensor, "noise_rng": (list, tuple), "history": list}
OPTIONAL_STATE_KEYS = {"training_weights": dict, "average": dict, "selection": dict, "scaler": dict,
                       "cuda_rng": (list, tuple)}


def pointer(run: Path, which: str = "last") -> Path:
    """The file naming checkpoint ``which`` ("last" or "best") of the run folder ``run``."""
    return run / FOLDER / f"{which}.json"


def _name(epoch: int) -> str:
    return f"epoch-{epoch:06d}"


def write_checkpoint(run: Path, model: torch.nn.Module, state: dict[str, Any], *, preprocess: dict,
                     pointers: tuple[str, ...] = ("last",), extra: dict | None = None) -> Path:
    """Write the checkpoint of ``state['epoch']`` (if not there yet) and point ``pointers`` at it."""
    root = run / FOLDER
    epoch = int(state["epoch"])
    final = root / _name(epoch)
    if not (final / STATE).is_file():
        with writing(final):
            root.mkdir(exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{_name(epoch)}.", dir=root))
        usual_mode(tmp, 0o777)  # mkdtemp makes it private; a checkpoint is as readable as the run's other files
        try:
            model_state = state["model"]
            saved = _WeightsOnly(model, model_state)
            save(saved, tmp, preprocess=preprocess)
            rest = {k: v for k, v in state.items() if k != "model"}
            buffer = io.BytesIO()  # serialised in memory: a full disk is an OSError files.py names, not torch's
            torch.save(rest, buffer)
            write_bytes(tmp / STATE, buffer.getvalue())
            with writing(final):
                if final.exists():  # an incomplete leftover of an earlier, killed attempt
                    shutil.rmtree(final)
                tmp.rename(final)
        except WriteError as e:  # name the checkpoint, not its temporary folder
            raise WriteError(str(e).replace(str(tmp), str(final))) from e
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    for p in pointers:
        write_json(pointer(run, p), {"dir": final.name, "epoch": epoch, **(extra or {})})
    return final


def prune(run: Path, keep_every: int = 0) -> None:
    """Remove checkpoints no pointer names (keeping every ``keep_every``-th epoch when set)."""
    root = run / FOLDER
    if not root.is_dir():
        return
    named = set()
    for p in root.glob("*.json"):
        try:
            named.add(json.loads(p.read_text())["dir"])
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            continue
    for d in root.iterdir():
        if not d.is_dir():
            continue
        if d.name.startswith("."):  # a temporary folder left by a kill
            shutil.rmtree(d, ignore_errors=True)
            continue
        if d.name in named:
            continue
        try:
            epoch = int(d.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if keep_every and epoch % keep_every == 0:
            continue
        shutil.rmtree(d, ignore_errors=True)


def read_checkpoint(run: Path, which: str = "last") -> tuple[Path, dict[str, Any]]:
    """The folder and the full training state (model weights included) of checkpoint ``which``; a damaged one
    names the others a resume could start from."""
    path = pointer(run, which)
    if (run / FOLDER).is_symlink():  # a run folder may come from anywhere: a resume writes and prunes there
        raise AekitError(f"{run / FOLDER}: is a link to {(run / FOLDER).resolve()}, not the run's own checkpoints "
                         "folder; move the folder it names in its place")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        name = info["dir"]
    except FileNotFoundError:
        raise AekitError(f"{run}: no checkpoint to resume from ({path} is missing){others(run)}") from None
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise AekitError(f"{path}: unreadable checkpoint pointer ({e}){others(run)}") from None
    if (folder := named_folder(run, info)) is None:
        raise AekitError(f"{path}: names {name!r}, not a checkpoint folder of {run / FOLDER} (epoch-NNNNNN)"
                         f"{others(run)}")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing them
            warnings.simplefilter("ignore")
            state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AekitError(f"{folder}: missing {STATE}{others(run, folder)}") from None
    except Exception as e:  # UnpicklingError for anything but tensors and plain values
        raise AekitError(f"{folder / STATE}: refused to load ({_why(e)}){others(run, folder)}") from None
    if problem := state_problem(state):
        raise AekitError(f"{folder / STATE}: not an aekit training state ({problem}){others(run, folder)}")
    try:
        state["model"] = load_file(str(folder / MODEL_WEIGHTS), device="cpu")
    except (FileNotFoundError, SafetensorError, OSError) as e:
        raise AekitError(f"{folder / MODEL_WEIGHTS}: cannot read checkpoint weights ({e})"
                         f"{others(run, folder)}") from None
    return folder, state


def state_problem(state: Any) -> str | None:
    """What a resume would miss in ``state`` (a key, or one of another type: :data:`STATE_KEYS`), or None."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}"
    for key, kind in STATE_KEYS.items():
        if key not in state:
            return f"no {key!r}"
        if not isinstance(state[key], kind):
            return f"{key!r} is a {type(state[key]).__name__}"
    for key, kind in OPTIONAL_STATE_KEYS.items():
        if state.get(key) is not None and not isinstance(state[key], kind):
            return f"{key!r} is a {type(state[key]).__name__}"
    return None


def check_weights(model: torch.nn.Module, folder: Path, state: dict[str, Any]) -> None:
    """The weights of checkpoint ``folder`` (``state``, read by :func:`read_checkpoint`) fit ``model``, the model
    the run's configuration describes: else an error naming the file and the first difference."""
    for name, weights in ((MODEL_WEIGHTS, state["model"]), (STATE, state.get("training_weights"))):
        if weights is not None and (problem := weights_problem(model, weights)):
            raise AekitError(f"{folder / name}: the weights are not of the model the run's configuration describes "
                             f"({problem}){others(folder.parent.parent, folder)}")


def named_folder(run: Path, named) -> Path | None:
    """The checkpoint folder of ``run`` that a pointer's content names (``{"dir": "epoch-000012", ...}``), or None
    where it names anything else: a path, another folder, a link (a run folder may come from anywhere)."""
    name = named.get("dir") if isinstance(named, dict) else None
    folder = run / FOLDER / str(name)
    return folder if isinstance(name, str) and re.fullmatch(r"epoch-\d{6,}", name) and not folder.is_symlink() else None


def _why(e: Exception) -> str:
    """Why torch refused state.pt, in a few words (never torch's advice to load it with weights_only off)."""
    text = str(e)
    if "Weights only load failed" in text or isinstance(e, pickle.UnpicklingError):
        return ("it holds Python objects other than tensors and plain values, and loading them could run code: "
                "aekit writes no such state.pt, so the file was made or changed elsewhere")
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return first[:200]


def others(run: Path, damaged: Path | None = None) -> str:
    """"; other checkpoints: ..." naming those a resume could start from instead of ``damaged`` (newest first,
    and which best.json names) and how, or "" when there are none."""
    found = sorted((d for d in (run / FOLDER).glob("epoch-*")
                    if d.name[6:].isdigit() and d != damaged and (d / STATE).is_file()), reverse=True)
    if not found:
        return ""
    try:
        best = json.loads(pointer(run, "best").read_text(encoding="utf-8"))["dir"]
    except (OSError, ValueError, KeyError, TypeError):
        best = None
    names = ", ".join(d.name + (" (best.json names it)" if d.name == best else "") for d in found)
    move = f"move {damaged} away and " if damaged is not None else ""
    newest = {"dir": found[0].name, "epoch": int(found[0].name.split("-")[1])}
    return (f"; other checkpoints: {names}: to resume from {found[0].name}, {move}write {json.dumps(newest)} "
            f"into {pointer(run)}")


class _WeightsOnly(torch.nn.Module):
    """Presents a state dict with a model's config to :func:`aekit.save`."""

    def __init__(self, model: torch.nn.Module, state: dict[str, torch.Tensor]):
        super().__init__()
        self.config = model.config
        self._state = state

    def state_dict(self, *args, **kwargs):  # noqa: D401 -- the saved weights
        return self._state
