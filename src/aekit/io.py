"""Saving and loading: ``model.json`` (architecture, constructor arguments, version) + ``model.safetensors``.

Loading reads only those two files, parses JSON and safetensors, and never unpickles anything.
Every write is atomic: a temporary file in the same folder, then ``os.replace``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .errors import AekitError

MODEL_JSON = "model.json"
MODEL_WEIGHTS = "model.safetensors"
FORMAT = "aekit-model/1"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp (and some writers) create 0600: give the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Atomically write ``path`` with ``writer(tmp_path)`` (for libraries that write files themselves)."""
    with atomic_path(path) as tmp:
        writer(tmp)


def save(model: torch.nn.Module, folder: str | Path, *, preprocess: dict[str, Any] | None = None) -> Path:
    """Save ``model`` into ``folder`` as model.json + model.safetensors; returns the folder."""
    from dataclasses import asdict

    from safetensors.torch import save_file

    from . import __version__
    from .config import _to_plain

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_with(folder / MODEL_WEIGHTS, lambda tmp: save_file(state, str(tmp), metadata={"format": FORMAT}))
    meta = {
        "format": FORMAT,
        "aekit_version": __version__,
        "architecture": model.config.name,
        "class": type(model).__name__,
        "config": _to_plain(asdict(model.config)),
        "preprocess": preprocess or {},
    }
    write_json(folder / MODEL_JSON, meta)
    return folder


def read_model_json(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / MODEL_JSON
    if not folder.is_dir():
        raise AekitError(f"{folder}: no such run or model folder")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AekitError(f"{folder}: no {MODEL_JSON} (not a finished aekit run or model folder)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise AekitError(f"{path}: cannot read model description ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise AekitError(f"{path}: not an aekit model description (format {meta.get('format')!r})")
    return meta


def load(folder: str | Path, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a model saved by :func:`save` (or a run folder); returns it in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .config import build_model_config
    from .models import create_model

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
