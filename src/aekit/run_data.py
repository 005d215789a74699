"""What a run was trained on (its ``data.json``), and the run's own data read again and checked against it.

``data.json`` records the source, the number of images, a digest of their sorted names and, for images held
in memory, a digest of their pixels and labels in order (``pixels_sha256``: an array's names are its row
numbers, so rows reordered would split otherwise, unseen); for a folder's images held in memory, also a
digest of its files' bytes in order (``files_sha256``). A run's splits are only its own on the images it was
trained on: :func:`check_record` refuses others (``--resume``, ``evaluate``, ``score``).

``evaluate`` and ``score`` need only the held-out images. :func:`unchanged` says, from the folder's listing
and file headers and without decoding a file, whether a folder is the one the run was trained on: the same
names (so the same order, labels and splits) and, where the run held its images in memory, the same bytes
in the same order (so the same pixels). Then only the images asked for are decoded; else every file is,
as training did, and the pixels are checked as before (which also passes a run some of whose files failed
to decode in training, skipped, and a file whose bytes changed but not its pixels).
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from pathlib import Path

import torch

from .data.sources import BUILT_IN
from .errors import AekitError
from .files import read_json
from .training.agreement import digest


def data_record(data) -> dict:
    """The record of ``data`` (ImageData) for data.json: see the module's docstring."""
    record = _record(data)
    if "pixels_sha256" in record:
        if data.groups is None and data.source not in BUILT_IN and os.path.isdir(data.source):
            try:
                record["files_sha256"] = files_digest(data)
            except OSError:  # a file gone since it was read: evaluate decodes every file to check the pixels
                pass
    return record


def _record(data) -> dict:
    """The record without the files' digest: what :func:`check_record` compares."""
    record = {"source": str(data.source), "images": len(data), "names_sha256": names_digest(data)}
    if isinstance(data.images, torch.Tensor):
        record["pixels_sha256"] = digest(data.images, *(() if data.labels is None else (torch.as_tensor(data.labels),)))
    return record


def names_digest(data, form: str | None = None) -> str:
    """A SHA-256 of the sorted names of ``data``'s images (``form``: each put in that Unicode form first)."""
    names = sorted(unicodedata.normalize(form, str(n)) if form else str(n) for n in (data.names or []))
    return hashlib.sha256("\n".join(names).encode("utf-8", "surrogateescape")).hexdigest()


def _named(then: dict, data) -> bool:
    """Whether the record ``then`` has the names of ``data``: their digest, or, for a run trained when a folder's
    names were the system's own (before they were in NFC form, :func:`aekit.data.folders.relative_names`), that of
    the same names in NFD form (macOS's HFS+ gives accented letters so, and a copy from it keeps them), where sorting
    by them gives the same order, so the same splits (else the run's splits cannot be made again)."""
    if then.get("names_sha256") == names_digest(data):
        return True
    names = [str(n) for n in data.names or []]
    same_order = sorted(names, key=lambda n: unicodedata.normalize("NFD", n)) == sorted(names)
    return same_order and then.get("names_sha256") == names_digest(data, "NFD")


def files_digest(data) -> str:
    """A SHA-256 of the shape of ``data``'s images (a folder's, at the working size) and of each image file's
    name and bytes, in the data's order."""
    h = hashlib.sha256(str(tuple(data.images.shape[1:])).encode())
    for name in data.names:
        contents = Path(data.source, name).read_bytes()
        h.update(b"\0%s\0%d\0" % (str(name).encode("utf-8", "surrogateescape"), len(contents)))
        h.update(contents)
    return h.hexdigest()


def unchanged(path: Path, data) -> bool:
    """Whether the record at ``path`` (data.json) shows ``data``, a folder's files not yet decoded, to be the
    images the run was trained on (see the module's docstring); a run from before data.json: True, as
    :func:`check_record` passes it."""
    if not path.is_file():
        return True
    then = read_json(path)
    if not isinstance(then, dict) or not _named(then, data):
        return False
    if "pixels_sha256" not in then:  # streamed, or a run from before the pixel digest: names only, as check_record
        return True
    try:
        return then.get("files_sha256") == files_digest(data)
    except OSError:
        return False


def check_record(path: Path, run: Path, data, doing: str) -> None:
    """The images ``doing`` (resume, evaluate) reads, ``data``, are those the run at ``run`` was trained on
    (the record at ``path``): else its splits would be others, and images it trained on could be scored as
    held out. Runs from before data.json pass."""
    if not path.is_file():
        return
    then, now = read_json(path), _record(data)
    if not isinstance(then, dict):
        raise AekitError(f"{path}: not a record of the run's data (a JSON {type(then).__name__})")
    named = _named(then, data)  # older runs have no pixel digest: names only
    if not named or then.get("pixels_sha256", now.get("pixels_sha256")) != now.get("pixels_sha256"):
        raise AekitError(
            f"{run}: the data changed since the run was trained ({now['source']}: {now['images']} images "
            f"now, {then.get('images')} then, " + ("or other names" if not named else "other pixels, labels or "
            "order") + "), so its splits would be others and images it trained on could be scored as held out; "
            f"{doing} needs the images it was trained on (restore them; to score other images: aekit evaluate RUN "
            "--data PATH)")
