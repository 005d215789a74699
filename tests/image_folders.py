"""Small generated image folders for the data tests."""

from pathlib import Path

import numpy as np
from PIL import Image


def picture(i: int, h: int = 24, w: int = 24, colour: bool = True) -> np.ndarray:
    """A smooth uint8 picture that differs with ``i``."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    r = 0.5 + 0.45 * np.sin(6.28 * (xx * (1 + i % 3) + yy * (i % 5) / 3 + i / 7))
    g = 0.5 + 0.45 * np.cos(6.28 * (yy * (1 + i % 2) + i / 5))
    b = (r + g) / 2
    rgb = np.stack([r, g, b], -1) if colour else r
    return (rgb * 255).round().astype(np.uint8)


def make_folder(
    root: Path, n: int = 12, *, size=(24, 24), colour=True, subfolders=("cats", "dogs"), suffix="png"
) -> Path:
    """``n`` images spread over ``subfolders`` (none: all at the top), as ``root``/sub/img-NN.suffix."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        folder = root / subfolders[i % len(subfolders)] if subfolders else root
        folder.mkdir(exist_ok=True)
        Image.fromarray(picture(i, *size, colour=colour)).save(folder / f"img-{i:02d}.{suffix}")
    return root


def truncate(path: Path) -> Path:
    """Cut an image file short, so that its header reads but its pixels do not."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path
