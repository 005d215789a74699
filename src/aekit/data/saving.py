"""Writing images as a folder of PNG files: the inverse of :func:`aekit.data.load_folder` (``aekit data``)."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DataError
from ..files import file_key, new_files, user_path
from .container import ImageData, take
from .image_file import IMAGE_SUFFIXES, ImageInfo, write_image
from .tiles import cut_from


def save_folder(data: ImageData, out: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write every image of ``data`` as a PNG under ``out``: the inverse of :func:`load_folder`.

    Labelled images go in one subfolder per label (its name, or the label number), so reading the folder
    back gives the same labels (and ``--split subject`` the same people); unlabelled tiles (``data.fit
    tiles``) in one subfolder per image cut, so read back its tiles share a label: model selection's
    validation split and ``--split subject`` keep them together. Each file is named after its
    image (a file's own name, ``olivetti-123``, ``x.npy-5``); grayscale as 16-bit PNG (within 1/131070
    of the values), colour as 8-bit. Existing files are replaced only with ``overwrite``; each file is
    written atomically. Returns the paths written, in the data's order."""
    out = Path(user_path(out))
    n = len(data)
    width = len(str(int(data.labels.max()))) if data.labels is not None and n else 0
    groups = len(str(int(data.groups.max()))) if data.groups is not None and n else 0
    targets = []
    for i in range(n):
        stem = file_stem(data.names[i]) if data.names else f"{i:0{len(str(n - 1))}d}"
        folder = out
        if data.labels is not None:
            label = int(data.labels[i])
            folder = out / (_safe(data.label_names[label], "label") if data.label_names else f"{label:0{width}d}")
        elif data.groups is not None:
            folder = out / (file_stem(cut_from(data.names[i])) if data.names else f"{int(data.groups[i]):0{groups}d}")
        targets.append(folder / f"{stem}.png")
    seen: dict[str, int] = {}
    for i, t in enumerate(targets):
        if (j := seen.setdefault(file_key(t), i)) != i:
            a, b = (data.names[j], data.names[i]) if data.names else (f"image {j}", f"image {i}")
            raise DataError(f"{a} and {b} would both be written as {t}: their names (or labels) differ only in the "
                            "suffix, in case (one file on macOS and Windows) or in characters a file name cannot hold; "
                            "rename one")
    new_files(out, targets, overwrite=overwrite, error=DataError)
    for i, target in enumerate(targets):
        pixels = take(data.images, [i])[0].permute(1, 2, 0).numpy()
        h, w, c = pixels.shape
        like = ImageInfo("PNG", "I;16", 16, (h, w), 1) if c == 1 else ImageInfo("PNG", "RGB", 8, (h, w), 3)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_image(target, pixels, like=like)
    return targets


def file_stem(name: str) -> str:
    """A file name for an image named ``name``: its last path part after either separator (a name from Windows too),
    less an image suffix (spaces and any letters kept)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base.lower().endswith(IMAGE_SUFFIXES):
        base = base.rsplit(".", 1)[0]
    return _safe(re.sub(r"\[(\d+)\]", r"-\1", base), "image")  # an array's row: x.npy[05] -> x.npy-05


def _safe(name: str, empty: str) -> str:
    """``name`` as one file or folder name: separators, control characters and those Windows refuses
    replaced by '-', no leading or trailing dots or spaces (so never '..', nor a path out of the folder)."""
    return re.sub(r'[\x00-\x1f\x7f/\\:*?"<>|]+', "-", name).strip(" .-") or empty
