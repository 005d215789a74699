"""Atomic file writes: a temporary file beside the target, then one ``os.replace``.

Every file aekit writes goes through here, so a kill at any moment leaves either the old file or
the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .errors import AekitError


def new_file(path: str | Path, *, overwrite: bool, suffix: str | None = None, beside: tuple[str, ...] = ()) -> Path:
    """``path`` (an ``out`` option) checked before any work: not a folder, ending in ``suffix`` when given, in a
    folder that exists, and replacing no file (it, or the ones with the suffixes ``beside`` it) unless
    ``overwrite``. The errors name ``out``."""
    p = Path(path)
    if p.is_dir():
        want = f"a file name ending in {suffix}" if suffix else "the file to write"
        raise AekitError(f"out {p}: is a folder; give {want}", keys="out")
    if suffix and p.suffix.lower() != suffix:
        raise AekitError(f"out {p}: this command writes {suffix} files; give a name ending in {suffix}", keys="out")
    if not p.parent.is_dir():
        raise AekitError(f"out {p}: folder {p.parent} does not exist", keys="out")
    existing = [f for f in (p, *(p.with_suffix(s) for s in beside)) if f.exists()]
    if existing and not overwrite:
        which = "" if existing[0] == p else f"{existing[0]} "
        raise AekitError(f"out {p}: {which}already exists (add overwrite to replace it)", keys=("out", "overwrite"))
    return p


def new_files(folder: str | Path, paths: Iterable[Path], *, overwrite: bool,
              error: type[AekitError] = AekitError) -> Path:
    """The output folder ``folder`` (an ``out`` option) checked before any work: not a file, and none of
    ``paths`` (under it) there already unless ``overwrite``. The errors name ``out``; returns the folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise error(f"out {folder}: exists and is not a folder", keys="out")
    existing = next((p for p in paths if p.exists()), None)
    if existing is not None and not overwrite:
        shown = existing.relative_to(folder) if existing.is_relative_to(folder) else existing
        raise error(f"out {folder}: {shown} already exists (add overwrite to replace it)", keys=("out", "overwrite"))
    return folder


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


def write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Atomically write ``path`` with ``writer(tmp_path)`` (for libraries that write files themselves)."""
    with atomic_path(path) as tmp:
        writer(tmp)


def write_text(path: str | Path, text: str) -> None:
    write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(path: str | Path, data: bytes) -> None:
    write_with(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_npy(path: str | Path, array: np.ndarray) -> None:
    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    write_with(path, writer)


def read_json(path: str | Path) -> Any:
    """A JSON file's content, or None when it does not exist."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as e:
        raise AekitError(f"{path}: cannot read JSON ({e})") from None
