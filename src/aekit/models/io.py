"""Saving and loading: ``model.json`` (architecture, constructor arguments, version) + ``model.safetensors``.

Loading reads only those two files, parses JSON and safetensors, and never unpickles anything.
Every write is atomic: a temporary file in the same folder, then ``os.replace``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from ..data import FitMethod, ResizeMethod, size_problem
from ..errors import AekitError
from ..files import write_bytes, write_json, writing
from ..memory import gib, too_much
from ..typed import MISSING, build, legacy, to_plain
from ..version import __version__, newer
from .base import ModelConfig
from .registry import build_model_config, check_room, meta_model, model_class

MODEL_JSON = "model.json"
MODEL_WEIGHTS = "model.safetensors"
FORMAT = "aekit-model/1"


@dataclass
class Preprocess:
    """model.json's "preprocess": how images reached the model's working size in training (None: not recorded)."""

    size: tuple[int, int] | None = None  # (height, width) the model works at
    resize: ResizeMethod | None = None  # the resize method
    channels: Literal[1, 3] | None = None  # the model's image channels
    fit: FitMethod | None = None  # how an image was fitted to the working size
    crop: int | None = None  # training windows of this side (0: whole images)


def save(model: torch.nn.Module, folder: str | Path, *, preprocess: dict[str, Any] | None = None) -> Path:
    """Save ``model`` into ``folder`` as model.json + model.safetensors; returns the folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise AekitError(f"{folder}: is a file; save writes a folder (model.json + model.safetensors)")
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # serialised in memory, written by Python: a full disk is an OSError that files.py names, not a library's own error
    write_bytes(folder / MODEL_WEIGHTS, safetensors_bytes(state, metadata={"format": FORMAT}))
    meta = {
        "format": FORMAT,
        "aekit_version": __version__,
        "architecture": model.config.name,
        "class": type(model).__name__,
        "config": to_plain(asdict(model.config)),
        "preprocess": preprocess or {},
    }
    write_json(folder / MODEL_JSON, meta)
    return folder


def read_model_json(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / MODEL_JSON
    if folder.is_file():
        raise AekitError(f"{folder}: is a file; give the run or model folder that holds {MODEL_JSON}")
    if not folder.is_dir():
        raise AekitError(f"{folder}: no such run or model folder")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AekitError(f"{folder}: no {MODEL_JSON} (not a finished aekit run or model folder)") from None
    except (OSError, json.JSONDecodeError, RecursionError) as e:  # RecursionError: nested too deeply
        raise AekitError(f"{path}: cannot read model description ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        what = f"format {meta.get('format')!r}" if isinstance(meta, dict) else f"a JSON {type(meta).__name__}"
        raise AekitError(f"{path}: {_newer(meta) or f'not an aekit model description ({what})'}")
    return meta


def _newer(meta: Any) -> str | None:
    """Why a model.json this aekit cannot read was written by a newer aekit, or None."""
    return newer(meta.get("aekit_version")) if isinstance(meta, dict) else None


def read_preprocess(meta: dict[str, Any], config: ModelConfig | None = None) -> dict[str, Any]:
    """model.json's "preprocess", checked: a table of known keys, each value of its type; with the model's ``config``,
    a size that is the model's (a model of one size) and that one image at it fits in memory."""
    raw = meta.get("preprocess", {})
    pre = build(Preprocess, raw, "preprocess")
    if pre.size is not None and (problem := size_problem(pre.size)):
        raise AekitError(f"preprocess.size {problem}")
    if config is None:
        return raw
    (h, w), (mh, mw) = pre.size or config.input_size, config.input_size
    if (h, w) != (mh, mw) and not model_class(config.name).any_size:
        raise AekitError(f"preprocess.size {h}x{w} is not the size its {config.name} model works at (config.input_size "
                         f"{mh}x{mw}); training writes the same size in both")
    for key, (sh, sw) in {"preprocess.size": (h, w), "config.input_size": (mh, mw)}.items():
        need = 4 * (pre.channels or config.in_channels) * sh * sw  # one float32 image
        if more := too_much(need):
            raise AekitError(f"{key} {sh}x{sw}: one image at the model's working size takes {gib(need)}{more}")
    return raw


def shapes_problem(own: dict[str, tuple[int, ...]], theirs: dict[str, Any]) -> str | None:
    """The first difference between a model's weights' shapes (``own``, by name) and ``theirs`` (a shape, or None for
    a value that is no tensor), in a few words with the number of differences, or None when they agree."""
    shapes = [f"{k} has shape {tuple(theirs[k] or ())}, the model's {own[k]}"
              for k in own if k in theirs and (theirs[k] is None or tuple(theirs[k]) != own[k])]
    missing = [f"no {k}" for k in own if k not in theirs]
    unexpected = [f"an unexpected {k}" for k in theirs if k not in own]
    problems = shapes + missing + unexpected
    if not problems:
        return None
    return problems[0] + (f"; {len(problems)} differences" if len(problems) > 1 else "")


def weights_problem(model: torch.nn.Module, state: dict[str, Any]) -> str | None:
    """The first difference between ``model``'s weights and ``state`` (a shape, a missing or an unexpected
    key), in a few words with the number of differences, or None when ``state`` loads into ``model``."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return shapes_problem(own, {k: getattr(v, "shape", None) for k, v in state.items()})


def weights_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The names and shapes of a safetensors file's tensors, from its header alone (no tensor is read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except FileNotFoundError:
        raise AekitError(f"{path}: missing weights file") from None
    except (SafetensorError, OSError) as e:
        raise AekitError(f"{path}: not a readable safetensors file ({e})") from None


def check_weights_file(folder: Path, model: torch.nn.Module, written: dict | None = None) -> None:
    """The model that model.json describes (``model``, built on the meta device: :func:`meta_model`; ``written``: its
    "config" as the file holds it) is the one the folder's model.safetensors holds: their names and shapes, from the
    file's header, before any memory is taken for the weights."""
    weights = folder / MODEL_WEIGHTS
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if problem := shapes_problem(own, weights_shapes(weights)):
        lacks = [k for k in asdict(model.config) if isinstance(written, dict) and k not in written
                 and legacy(model.config, k) is MISSING]  # options that came with a new network of that name
        if lacks:
            raise OlderModel(f"{weights}: the weights do not match {MODEL_JSON} ({problem}): its {MODEL_JSON} has no "
                             f"{', '.join(lacks)}: it was written by an older aekit, whose {model.config.name} was "
                             "another network, and this aekit cannot load it; train it again, or load it with the "
                             "aekit that wrote it")
        raise AekitError(f"{weights}: the weights do not match {MODEL_JSON} ({problem}): the two files are of "
                         "different models; restore them from one save")


class OlderModel(AekitError):
    """A model an older aekit saved, of an architecture that has since become another network."""


def older_model(folder: Path) -> OlderModel | None:
    """Why the model in ``folder`` is one an older aekit saved, of an architecture that has since become another
    network (its model.json checked against the weights file's header only), else None, whatever else is wrong."""
    try:
        meta = read_model_json(folder)
        check_weights_file(folder, meta_model(build_model_config(meta.get("config"), where="config")),
                           meta.get("config"))
    except OlderModel as e:
        return e
    except Exception:  # noqa: BLE001 -- any other problem: the caller's own error says what it is
        return None
    return None


def load(folder: str | Path, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a model saved by :func:`save` (or a run folder); returns it in eval mode. model.json is checked against
    model.safetensors' header first: a damaged or foreign model.json cannot make it allocate more than the weights
    file holds."""
    folder = Path(folder)
    meta = read_model_json(folder)
    try:
        shell = meta_model(build_model_config(meta.get("config"), where="config"))
        preprocess = read_preprocess(meta, shell.config)
    except AekitError as e:  # a key or a value a newer aekit writes, or a damaged file
        why = _newer(meta) or f"{e} (a damaged or hand-edited file: restore it)"
        raise AekitError(f"{folder / MODEL_JSON}: {why}") from None
    check_weights_file(folder, shell, meta.get("config"))  # the names and shapes: none differs from here on
    try:
        check_room(shell)
    except AekitError as e:  # weights that match, and do not fit in memory
        raise AekitError(f"{folder / MODEL_JSON}: {e}") from None
    weights = folder / MODEL_WEIGHTS
    try:
        state = load_file(str(weights), device="cpu")
    except FileNotFoundError:
        raise AekitError(f"{weights}: missing weights file") from None
    except (SafetensorError, OSError) as e:
        raise AekitError(f"{weights}: not a readable safetensors file ({e})") from None
    # the weights read become the model's own (its build allocated none), in the dtypes the model is built with; a
    # copy, not the file's memory map (which would hold the file open and follow changes to it)
    own = shell.state_dict()  # on the meta device
    shell.load_state_dict({k: v.to(own[k].dtype, copy=True) for k, v in state.items()}, strict=True, assign=True)
    del state
    if lost := [n for n, t in shell.named_buffers() if t.is_meta]:  # a developer's mistake: docs/models.md
        raise RuntimeError(f"the {shell.config.name} model's buffers {lost} are not saved (persistent=False), so "
                           "aekit.load cannot restore them: make them persistent")
    model = shell.to(memory_format=torch.channels_last) if shell.channels_last else shell
    model.preprocess = preprocess
    return model.to(device).eval()
