"""Saving and loading: ``model.json`` (architecture, constructor arguments, version) + ``model.safetensors``.

Loading reads only those two files, parses JSON and safetensors, and never unpickles anything.
Every write is atomic: a temporary file in the same folder, then ``os.replace``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from ..errors import AekitError
from ..files import write_bytes, write_json, writing
from ..typed import to_plain
from ..version import __version__
from .registry import build_model_config, create_model

MODEL_JSON = "model.json"
MODEL_WEIGHTS = "model.safetensors"
FORMAT = "aekit-model/1"


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
    except (OSError, json.JSONDecodeError) as e:
        raise AekitError(f"{path}: cannot read model description ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        what = f"format {meta.get('format')!r}" if isinstance(meta, dict) else f"a JSON {type(meta).__name__}"
        raise AekitError(f"{path}: not an aekit model description ({what})")
    return meta


def load(folder: str | Path, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a model saved by :func:`save` (or a run folder); returns it in eval mode."""
    folder = Path(folder)
    meta = read_model_json(folder)
    config = build_model_config(meta.get("config", {}), where=f"{folder / MODEL_JSON}: config")
    model = create_model(config)
    weights = folder / MODEL_WEIGHTS
    try:
        state = load_file(str(weights), device="cpu")
    except FileNotFoundError:
        raise AekitError(f"{weights}: missing weights file") from None
    except (SafetensorError, OSError) as e:
        raise AekitError(f"{weights}: not a readable safetensors file ({e})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else "mismatch"
        raise AekitError(f"{weights}: weights do not match {MODEL_JSON} ({first})") from None
    model.preprocess = meta.get("preprocess", {})
    return model.to(device).eval()
