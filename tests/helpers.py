"""Helpers the tests import: real aekit processes, copies of shared runs, small generated image folders."""

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
from PIL import Image


BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str | None:
    """The headless browser the report test drives, or None when none is installed."""
    return next(filter(None, map(shutil.which, BROWSERS)), None)


def aekit_process(*args, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    """``python -m aekit ARGS`` as a real process (exit codes, signals, several processes)."""
    return subprocess.run([sys.executable, "-m", "aekit", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout)


def one_line_error(r: subprocess.CompletedProcess) -> str:
    err = r.stderr.strip()
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert err.startswith("aekit: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def opened(path) -> Image.Image:
    """The image file at ``path``, read in full and closed (format and mode kept)."""
    with Image.open(path) as im:
        im.load()
        fmt, copy = im.format, im.copy()
    copy.format = fmt
    return copy


def copy_run(run, tmp_path: Path) -> Path:
    """A private copy of a shared run's folder."""
    target = tmp_path / "run"
    shutil.copytree(run.out, target)
    return target


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


def huge_header(path: Path, shape=(10**7, 1000, 1000)) -> Path:
    """A .npy file whose header declares ``shape`` (36 TiB of float32), with a few bytes after it: a damaged header."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.write(bytes(1000))
    return path


def truncate(path: Path) -> Path:
    """Cut an image file short, so that its header reads but its pixels do not."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


class FakeClock:
    """The clock of aekit.progress, moved only by the work a test runs (no sleeping, no timed assertions)."""

    def __init__(self, monkeypatch):
        import aekit.progress

        self.now = 0.0
        monkeypatch.setattr(aekit.progress, "time", types.SimpleNamespace(perf_counter=lambda: self.now))

    def slow_baseline(self, monkeypatch, seconds: float, name: str = "slow") -> None:
        """Register a baseline ``name`` that takes ``seconds`` an image on this clock (and dims the images)."""
        from aekit.baselines import BASELINES, Baseline

        def denoise(noisy: np.ndarray) -> np.ndarray:
            self.now += seconds * len(noisy)
            return noisy * 0.9

        monkeypatch.setitem(BASELINES, name, lambda setup: Baseline(name, "a fake", denoise))
