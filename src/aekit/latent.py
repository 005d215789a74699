"""Using the codes of a trained model: encode, decode, sample, interpolate and map.

Every function takes a run folder (or a folder saved by :func:`aekit.save`) or a loaded model.
Input images are read with :func:`aekit.load_image` and brought to the model's working size
exactly as in training (``model.preprocess``: size, resize method, channels, fit). Codes are float32
arrays of shape (N, code length). Anomaly scores are in :mod:`aekit.anomaly`.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .config import load_from_config, replace, working_size
from .data import find_images, fit_images, load_image, load_npy, read_each, take, write_image
from .data.saving import file_stem
from .errors import AekitError
from .files import atomic_paths, new_files, save_npy, save_npy_to, user_path, write_bytes
from .inference import preprocessing
from .memory import gib, too_much
from .progress import bar
from .codes import _need_decoder, decode as decode_codes, encode as encode_images, interpolate_images
from .report.pictures import figure, image_grid, png_bytes, save_png
from .run_folder import RunFolder


def as_model(run_or_model, device: str = "cpu") -> torch.nn.Module:
    """A model in eval mode: loaded from a run folder, or the given model."""
    if isinstance(run_or_model, torch.nn.Module):
        return run_or_model.eval()
    return RunFolder(run_or_model).model(device)


def encode(run, images, *, device: str = "cpu") -> np.ndarray:
    """Codes (N, code length) of (N, C, H, W) images in [0, 1] at the working size, by the model of ``run``."""
    return encode_images(as_model(run, device), images)


def decode(run, codes: np.ndarray | torch.Tensor, *, device: str = "cpu") -> torch.Tensor:
    """Images (N, C, H, W) decoded from codes (N, code length) by the model of ``run``."""
    return decode_codes(as_model(run, device), codes)


# --- images in ---------------------------------------------------------------------------------

def read_inputs(model: torch.nn.Module, inputs: Sequence[str | Path], *, skip_bad: bool | None = None,
                progress: bool | None = False, workers: int | None = None) -> tuple[torch.Tensor, list[Path], list[str]]:
    """The images of ``inputs`` (files, or folders searched recursively) at the model's working size,
    (N, C, H, W), their files, and the unreadable files skipped: with ``skip_bad`` they are left out and
    listed; without, the first one stops it (False: its error points to ``skip_bad``). ``progress``: a bar over
    the files (None: when stderr is a terminal). Many files are decoded by ``workers`` worker processes, as
    training reads a folder (``data.workers``; None: one per CPU core, at most 4)."""
    pre = preprocessing(model)
    found = find_images(inputs)
    need = 4 * len(found) * pre["channels"] * math.prod(pre["size"])  # float32
    if more := too_much(need):
        raise AekitError(f"preprocess.size {pre['size'][0]}x{pre['size'][1]}: {len(found)} images at the model's working "
                         f"size take {gib(need)}{more}; give fewer at a time")
    read = partial(load_image, size=tuple(pre["size"]), fit=pre["fit"], method=pre["resize"], channels=pre["channels"])
    with bar(len(found), unit="file", desc="reading", show=progress) as moving:
        images, kept, skipped = read_each(found, read, shape=(pre["channels"], *pre["size"]), skip_bad=skip_bad,
                                          inputs=inputs, workers=workers, moving=moving)
    return images, [f for f, _ in kept], skipped


# --- codes -------------------------------------------------------------------------------------

def encode_files(run, inputs: Sequence[str | Path], out: str | Path, *, device: str = "cpu",
                 skip_bad: bool = False, progress: bool | None = None,
                 workers: int | None = None) -> tuple[Path, Path, list[str]]:
    """Encode image files/folders into ``out`` (.npy, (N, code length)) and list the files, one per
    line in the order of the codes, in the .txt beside it (``skip_bad``: unreadable files are left
    out; ``progress``: a bar over the files read, None: when stderr is a terminal; ``workers``: see
    :func:`read_inputs`). Returns both paths and the unreadable files skipped."""
    model = as_model(run, device)
    x, files, skipped = read_inputs(model, inputs, skip_bad=skip_bad, progress=progress, workers=workers)
    out, names = Path(out), Path(out).with_suffix(".txt")
    codes = encode(model, x)
    listing = "".join(f"{_one_line(f.as_posix())}\n" for f in files)  # '/' on every system: decode reads it anywhere
    with atomic_paths(out, names) as (codes_tmp, names_tmp):  # the codes and their names change together
        save_npy_to(codes_tmp, codes)
        names_tmp.write_bytes(listing.encode("utf-8", errors="surrogateescape"))
    return out, names, skipped


def _one_line(name: str) -> str:
    """A file name on one line of the listing: a line break in it is written as \\n or \\r."""
    return name.replace("\n", "\\n").replace("\r", "\\r")


def _listed(listing: Path) -> list[str]:
    """The names of a listing, one per line (only a newline ends a line, a Windows line end too)."""
    return [line.removesuffix("\r") for line in listing.read_text(encoding="utf-8", errors="surrogateescape").removesuffix("\n").split("\n")]


def read_codes(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        codes = load_npy(path)
    except FileNotFoundError:
        raise AekitError(f"{path}: no such codes file") from None
    except (OSError, ValueError) as e:
        raise AekitError(f"{path}: not a .npy array of codes ({e}; aekit encode RUN IMAGES --out FILE.npy "
                         "writes one)") from None
    if codes.ndim != 2 or codes.dtype.kind not in "fiu" or codes.dtype.itemsize > 8 or not len(codes):
        raise AekitError(f"{path}: expected a (N, code length) array of real numbers, N at least 1, got {codes.dtype} "
                         f"{codes.shape}")
    if not np.isfinite(codes).all() or np.abs(codes).max() > np.finfo(np.float32).max:
        raise AekitError(f"{path}: codes contain NaN or Inf, or values beyond float32's range")
    return codes


def write_pngs(images: torch.Tensor, folder: str | Path, names: Sequence[str] | None = None, *,
               overwrite: bool = True) -> list[Path]:
    """One PNG per image in ``folder`` (``0000.png`` ..., or ``0000-NAME.png``); without ``overwrite`` an
    existing file of those names stops it before anything is written."""
    folder = Path(user_path(folder))
    paths = [folder / (f"{i:04d}" + (f"-{file_stem(names[i])}" if names else "") + ".png") for i in range(len(images))]
    new_files(folder, paths, overwrite=overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    for path, img in zip(paths, images):
        write_image(path, img.permute(1, 2, 0).numpy())
    return paths


def decode_files(run, codes_path: str | Path, out: str | Path, *, device: str = "cpu",
                 overwrite: bool = True) -> list[Path]:
    """Decode the codes of a .npy file into one PNG per code in the folder ``out``; named after the
    encoded files when the .txt that ``encode_files`` wrote is beside it (``overwrite``: replace files there)."""
    model = as_model(run, device)
    _need_decoder(model, "decode")
    codes = read_codes(codes_path)
    listing = Path(codes_path).with_suffix(".txt")
    names = _listed(listing) if listing.is_file() else None
    if names is not None and len(names) != len(codes):
        names = None
    try:
        images = decode(model, codes)
    except AekitError as e:  # the codes' shape: name the file they came from
        raise AekitError(f"{codes_path}: {e}; encode with this run (aekit encode RUN IMAGES --out FILE.npy)") from None
    return write_pngs(images, out, names, overwrite=overwrite)


# --- the prior and interpolation ---------------------------------------------------------------

def sample(run, n: int = 64, *, seed: int = 0, temperature: float = 1.0, device: str = "cpu") -> torch.Tensor:
    """``n`` new images decoded from codes drawn from the model's prior (the VAE: N(0, I)), its spread
    scaled by ``temperature`` (below 1: more typical, less varied images)."""
    model = as_model(run, device)
    if n < 1:
        raise AekitError(f"n must be at least 1, got {n}", keys="n")
    if not temperature > 0:
        raise AekitError(f"temperature must be positive, got {temperature}", keys="temperature")
    if model.prior != "normal":
        raise AekitError(
            f"sample: the {model.config.name} model has no prior to draw codes from; train a vae "
            "(aekit train --model vae)"
        )
    _need_decoder(model, "sample")
    h, w = model.config.input_size
    z = temperature * torch.randn(n, model.code_size(h, w), generator=torch.Generator().manual_seed(seed))
    return decode(model, z)


def grid_rows(images: torch.Tensor, per_row: int) -> list[torch.Tensor]:
    """Images split into rows of ``per_row`` (the last row padded with white)."""
    rows = list(images.split(per_row))
    if len(rows[-1]) < per_row:
        pad = torch.ones(per_row - len(rows[-1]), *images.shape[1:])
        rows[-1] = torch.cat([rows[-1], pad])
    return rows


def write_grid(images: torch.Tensor, path: str | Path, *, per_row: int | None = None) -> Path:
    """A PNG grid of images (square-ish by default) and the images as a .npy beside it."""
    per_row = per_row or max(1, int(np.ceil(np.sqrt(len(images)))))
    path = Path(path)
    save_png(image_grid(grid_rows(images, per_row)), path)
    save_npy(path.with_suffix(".npy"), images.numpy().astype(np.float32))
    return path


def interpolate(run, a: str | Path, b: str | Path, steps: int = 10, *, device: str = "cpu") -> torch.Tensor:
    """Images decoded along the straight line between the codes of images ``a`` and ``b``:
    (steps + 2, C, H, W) = a (as the model sees it), ``steps`` decodings from t = 0 to 1, b."""
    model = as_model(run, device)
    _need_decoder(model, "interpolate")
    if steps < 2:
        raise AekitError(f"steps must be at least 2, got {steps}", keys="steps")
    ends = []
    for end in (a, b):
        x, files, _ = read_inputs(model, [end])
        if len(files) != 1:  # a folder: which of its images?
            raise AekitError(f"{end}: a folder of {len(files)} images; interpolate takes one image file at each end")
        ends.append(x[0])
    return interpolate_images(model, *ends, steps)


# --- a 2-D map of the codes --------------------------------------------------------------------

def load_source(run: str | Path | RunFolder, source: str | None, channels: int | None = None, *,
                skip_bad: bool = False):
    """The images of ``source`` (default: the run's own data) as the run's model sees them (``channels``: the
    model's, to which another source's images are converted; ``skip_bad``: its unreadable files left out and
    listed in ``data.skipped``), with labels."""
    cfg = (run if isinstance(run, RunFolder) else RunFolder(run)).config()
    if source is not None:
        cfg = replace(cfg, **{"data.source": source, "data.channels": channels or cfg.data.channels,
                              "data.skip_bad": skip_bad})
    size = working_size(cfg)
    data = load_from_config(cfg.data, size=size)
    x = fit_images(take(data.images, range(len(data))), size, cfg.data.fit, cfg.data.resize, name=data.source)
    return x, data


def map_codes(codes: np.ndarray, method: str = "pca", *, seed: int = 0) -> np.ndarray:
    """Codes (N, D) -> 2-D coordinates (N, 2) with scikit-learn's PCA or t-SNE."""
    from sklearn.decomposition import PCA  # here: scikit-learn takes a second to import
    from sklearn.manifold import TSNE

    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(codes)
    if method == "tsne":
        perplexity = min(30.0, max(1.0, (len(codes) - 1) / 3))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(codes)
    raise AekitError(f"method {method!r}: not one of pca, tsne", keys="method")


def write_map(run, out: str | Path, *, source: str | None = None, method: str = "pca", seed: int = 0,
              device: str = "cpu", skip_bad: bool = False) -> dict:
    """A scatter plot of the codes of ``source`` (default: the run's data) in 2-D, coloured by label
    where the data has labels; returns what it drew (and the unreadable files ``skip_bad`` left out)."""
    model = as_model(run, device)
    x, data = load_source(run, source, model.config.in_channels, skip_bad=skip_bad)
    if len(x) < 3:
        raise AekitError(f"data.source {data.source}: a map needs at least 3 images, got {len(x)}", keys="data.source")
    xy = map_codes(encode(model, x), method, seed=seed)
    fig, ax = figure(figsize=(6.5, 5.5))
    if data.labels is not None:
        points = ax.scatter(xy[:, 0], xy[:, 1], c=data.labels, cmap="tab20", s=14)
        fig.colorbar(points, ax=ax, label="label")
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=14)
    ax.set_title(f"{model.config.name} codes of {len(x)} images of {data.source} ({method})", fontsize=9)
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")
    fig.tight_layout()
    write_bytes(out, png_bytes(fig))
    return {"out": Path(out), "images": len(x), "labelled": data.labels is not None, "coordinates": xy,
            "skipped": data.skipped}
