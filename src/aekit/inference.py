"""Running a trained model on images: reconstructions of any size, the flip ensemble, ``aekit denoise``.

Two kinds of model:
- fixed-size models (e.g. ``conv``, with a dense code): each image is resized to the model's working
  size, run in batches, and the output resized back to the image's own size;
- fully convolutional models (``fcn``): each image runs at its own size, in overlapping tiles
  (blended with linear ramps) when it is larger than ``tile``.
Outputs keep the input's file name, size, format, mode and bit depth (:func:`aekit.write_image`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .config import DataConfig
from .data import convert_channels, find_images, inference_batch_size, read_image, resize, write_image
from .data.image_file import ImageInfo
from .errors import AekitError, DataError, skip_bad_hint
from .files import clash, new_files, writing
from .noise import NoiseConfig, check_seed, file_noise, make_corruption, parse_noise
from .pipeline import Pipeline
from .run_folder import RunFolder
from .memory import allocation_as
from .report.pictures import grid_view, image_grid, save_png

GRID_IMAGES = 8  # images shown in the --add-noise grid


def reconstruct_channels(model: torch.nn.Module, images: list[torch.Tensor], **kwargs) -> list[torch.Tensor]:
    """:func:`reconstruct` for (C, H, W) images of 1 or 3 channels whatever the model's: a grayscale model
    takes each colour channel as its own image (the colours are kept), a colour model takes a gray image
    as three equal channels and gives back their mean."""
    want = model.config.in_channels
    pieces = [list(x[:, None]) if want == 1 else [x.expand(want, -1, -1) if len(x) != want else x] for x in images]
    flat = reconstruct(model, [p for piece in pieces for p in piece], **kwargs)
    out, i = [], 0
    for x, piece in zip(images, pieces):
        y = torch.cat(flat[i:i + len(piece)])  # a gray model: the channels back together
        out.append(y.mean(0, keepdim=True) if len(x) < len(y) else y)  # a colour model on a gray image
        i += len(piece)
    return out


@dataclass
class Item:
    path: Path  # the input file
    name: Path  # where the output goes, relative to --out
    pixels: torch.Tensor  # (C, H, W) float32 in [0, 1], C = 1 or 3 as the file has them
    info: ImageInfo  # the original's format, mode, bit depth and size


def flips_by_default(run) -> bool:
    """Whether a run denoises with its flip ensemble by default: where it trained with left-right flips
    (``train.hflip``), the mirror image of an image is one of the kind it learnt, and averaging the two
    passes is a little better (benchmarks/README.md#denoising). A model folder without config.toml: no."""
    folder = run if isinstance(run, RunFolder) else RunFolder(run)
    return folder.has_config() and folder.config().train.hflip is True


class FlipEnsemble(torch.nn.Module):
    """A model whose reconstruction is the average of its output on the image and, mirrored back, on
    the image's mirror image (a self-ensemble: two passes, a little more accurate for models trained
    with left-right flips). Works wherever the model does: ``reconstruct``, tiles, ``evaluate_run``.
    Only ``recon`` is averaged: the output's loss terms and code are the plain pass's."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.config = model.config
        self.decodes_codes = model.decodes_codes
        self.preprocess = model.preprocess

    def forward(self, x: torch.Tensor):
        out = self.model(x)
        mirrored = self.model(x.flip(-1)).recon.flip(-1)
        return replace(out, recon=(out.recon + mirrored) / 2)


def _ramp(n: int, overlap: int) -> torch.Tensor:
    w = torch.ones(n)
    if overlap > 0:
        r = torch.linspace(0, 1, overlap + 2)[1:-1]
        w[:overlap] = r
        w[-overlap:] = torch.minimum(w[-overlap:], r.flip(0))
    return w


def _starts(n: int, tile: int, step: int) -> list[int]:
    if n <= tile:
        return [0]
    s = list(range(0, n - tile + 1, step))
    if s[-1] != n - tile:
        s.append(n - tile)
    return s


@torch.no_grad()
def run_tiled(model: torch.nn.Module, x: torch.Tensor, tile: int = 256, overlap: int = 32) -> torch.Tensor:
    """A fully convolutional model on one (1, C, H, W) image, in overlapping tiles when large."""
    _, c, h, w = x.shape
    if h <= tile and w <= tile:
        return model(x).recon
    if overlap * 2 >= tile:
        raise AekitError(f"overlap {overlap} must be less than half of tile {tile}", keys=("overlap", "tile"))
    out = torch.zeros_like(x)
    weight = torch.zeros(1, 1, h, w, device=x.device)
    step = tile - overlap
    for top in _starts(h, tile, step):
        for left in _starts(w, tile, step):
            th, tw = min(tile, h), min(tile, w)
            patch = x[..., top : top + th, left : left + tw]
            wy = _ramp(th, overlap if h > tile else 0).to(x.device)
            wx = _ramp(tw, overlap if w > tile else 0).to(x.device)
            wt = (wy[:, None] * wx[None, :])[None, None]
            out[..., top : top + th, left : left + tw] += model(patch).recon * wt
            weight[..., top : top + th, left : left + tw] += wt
    return out / weight


@torch.no_grad()
def reconstruct(model: torch.nn.Module, images: list[torch.Tensor], *, batch_size: int | None = None,
                tile: int = 256, overlap: int = 32) -> list[torch.Tensor]:
    """The model's output for each (C, H, W) image, at the image's own size."""
    device = next(model.parameters()).device
    batch_size = batch_size or inference_batch_size(device)
    if not model.decodes_codes:  # fully convolutional: any size, tiles when large
        small = [i for i, x in enumerate(images) if x.shape[-2] <= tile and x.shape[-1] <= tile]
        out = _by_size(images, small, batch_size, lambda b: model(b.to(device)).recon.float().cpu())
        for i in set(range(len(images))) - set(small):
            out[i] = run_tiled(model, images[i][None].to(device), tile, overlap)[0].cpu()
        return [out[i] for i in range(len(images))]
    pre = preprocessing(model)
    size, method = tuple(pre["size"]), pre["resize"]

    def there_and_back(batch: torch.Tensor) -> torch.Tensor:
        recon = model(resize(batch, size, method).to(device)).recon.float().cpu()
        return resize(recon, tuple(batch.shape[-2:]), method)

    out = _by_size(images, range(len(images)), batch_size, there_and_back)
    return [out[i] for i in range(len(images))]


def preprocessing(model: torch.nn.Module) -> dict:
    """How images reach ``model``'s working size: model.json's "preprocess" (what training did), the training
    defaults for what a model saved without it does not say."""
    d = DataConfig()
    known = {k: v for k, v in (getattr(model, "preprocess", None) or {}).items() if v is not None}
    return {"size": list(model.config.input_size), "resize": d.resize, "channels": model.config.in_channels,
            "fit": d.fit, "crop": 0, **known}


SCALE_TOLERANCE = 1.5  # image sides further than this factor from the learnt size draw the scale note


def scale_note(model: torch.nn.Module, images: list[torch.Tensor], names: list[str] | None, where: str) -> str | None:
    """A note when a fully convolutional model that learnt whole images at its working size meets
    images of quite another size, so likely at another scale (the faces at 64x64 for a model that learnt
    them at 32x32), else None. Models trained on windows or tiles at the images' own scale get none."""
    pre = getattr(model, "preprocess", None) or {}
    if model.decodes_codes or not pre.get("size") or pre.get("fit", "resize") != "resize" or pre.get("crop"):
        return None
    h, w = pre["size"]
    off = [(n, x.shape[-2:]) for n, x in zip(names or [f"image {i}" for i in range(len(images))], images)
           if not (1 / SCALE_TOLERANCE <= x.shape[-2] / h <= SCALE_TOLERANCE
                   and 1 / SCALE_TOLERANCE <= x.shape[-1] / w <= SCALE_TOLERANCE)]
    if not off:
        return None
    name, (oh, ow) = off[0]
    trainable = min(oh, ow) > max(8, getattr(model, "factor", 1))  # a size a model could be trained at
    which = ("this image is" if len(images) == 1 else f"{len(off)} of these {len(images)} images "
             + ("is" if len(off) == 1 else "are"))
    return (f"note: {where} learnt whole images at {h}x{w}; {which} of quite another size (e.g. {name}, {oh}x{ow}), "
            f"so likely at another scale, where a denoiser does less well (one trained on faces at 32x32 denoised "
            f"64x64 faces 1.8 dB worse than one trained at 64x64): "
            + (f"train a model at their size (aekit train ... --size {oh}x{ow}) or " if trainable else "")
            + f"resize them to {h}x{w}")


def _by_size(images: list[torch.Tensor], index, batch_size: int, run) -> dict[int, torch.Tensor]:
    """``run`` on the images of ``index`` stacked in batches of one size each; {index: output}."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i in index:
        groups.setdefault(tuple(images[i].shape), []).append(i)
    out = {}
    for group in groups.values():
        for start in range(0, len(group), batch_size):
            chunk = group[start : start + batch_size]
            out.update(zip(chunk, run(torch.stack([images[i] for i in chunk]))))
    return out


def denoise_files(
    run: str | Path,
    inputs: list[str],
    out: str | Path,
    *,
    add_noise: NoiseConfig | str | None = None,
    seed: int | None = None,
    overwrite: bool = False,
    skip_bad: bool = False,
    tile: int = 256,
    overlap: int = 32,
    device: str = "cpu",
    flip_ensemble: bool | None = None,
) -> dict:
    """Denoise image files with the model of ``run``; returns what was written (and skipped).

    With ``flip_ensemble`` each output averages the model's passes on the image and on its mirror
    image (:class:`FlipEnsemble`); by default (None) it does for a run trained with flips
    (:func:`flips_by_default`). With ``skip_bad`` unreadable files are skipped and listed instead
    of stopping everything. With ``add_noise`` the inputs are corrupted first (seeded; for
    demonstrations, ``seed``: its seed, default 0) and a grid ``OUT/grid.png`` shows clean | noisy |
    denoised for up to 8 of them.
    """
    if seed is None:
        seed = 0
    elif add_noise is None:
        raise AekitError("seed seeds the noise of add_noise, which is not given: drop it or add noise",
                         keys=("seed", "add_noise"))
    check_seed(seed)
    add_noise = parse_noise(add_noise, "add_noise") if isinstance(add_noise, str) else add_noise  # a SPEC: "gaussian:0.2"
    model = RunFolder(run).model(device)
    if flip_ensemble or (flip_ensemble is None and flips_by_default(run)):
        model = FlipEnsemble(model)
    found, inside = find_images(inputs), Path(out).resolve()  # an --out inside an input folder: not an input
    files = [(p, n) for p, n in found if not p.resolve().is_relative_to(inside)] or found
    clobbered = next((p for p, n in files if (Path(out) / n).resolve() == p.resolve()), None)
    if clobbered is not None:
        raise AekitError(f"out {out}: would write over the input {clobbered}; give another folder", keys="out")
    if same := clash(n for _, n in files):
        raise AekitError(f"two inputs would both be written as {same}: rename one or denoise them separately")
    out = new_files(out, [Path(out) / name for _, name in files], overwrite=overwrite)
    if tile < 16 or overlap < 0:
        raise AekitError(f"tile must be at least 16 and overlap 0 or more (got {tile}, {overlap})",
                         keys=("tile", "overlap"))
    pipeline = Pipeline(corrupt=None if add_noise is None else make_corruption(add_noise))
    written, skipped, sizes, denoised, paged, shown = [], [], [], [], [], ([], [], [])
    for items in _read_in_chunks(files, skip_bad=skip_bad, skipped=skipped):  # never every image at once
        clean = [it.pixels for it in items]
        noisy = clean if add_noise is None else [pipeline.view(x[None], file_noise(seed, it.name))[0][0]
                                                 for x, it in zip(clean, items)]  # each at its size, its own noise
        with allocation_as(lambda: f"{Path(run) / 'model.json'}: out of memory running its model (working size "
                                   f"preprocess.size {'x'.join(map(str, preprocessing(model)['size']))}) on "
                                   f"{len(items)} image(s) from {items[0].path}: free memory, or restore a damaged or "
                                   "hand-edited model.json"):
            results = reconstruct_channels(model, noisy, tile=tile, overlap=overlap)
        for it, y in zip(items, results):
            target = out / it.name
            with writing(target.parent):
                target.parent.mkdir(parents=True, exist_ok=True)
            write_image(target, y.permute(1, 2, 0).numpy().astype(np.float32), like=it.info)
            written.append(str(target))
        sizes += [torch.empty(()).expand(x.shape) for x in clean]  # scale_note reads their shapes only
        denoised += [str(it.name) for it in items]
        paged += [(it.name, it.info.frames) for it in items if it.info.frames > 1]
        for keep, xs in zip(shown, (clean, noisy, results)):
            keep.extend(xs[:GRID_IMAGES - len(keep)])
    if not written:
        raise DataError(f"{' '.join(map(str, inputs))}: no readable image ({len(skipped)} skipped)")
    note = scale_note(model, sizes, denoised, str(run))
    if paged:  # read_image reads the first page of a TIFF, the first frame of a GIF: say so
        first = (f"note: {len(paged)} file(s) hold several pages or frames (e.g. {paged[0][0]}, "
                 f"{paged[0][1]}); only the first of each was denoised and written")
        note = first if note is None else f"{note}\n{first}"
    clean, noisy, results = shown
    report = {"written": written, "grid": None, "skipped": skipped, "note": note}
    if add_noise is not None and pipeline.corrupt is not None:
        colour = 3 if any(len(x) == 3 for x in clean[:GRID_IMAGES]) else 1

        def on_grid(xs: list[torch.Tensor]) -> torch.Tensor:  # every picture at one display size, in one mode
            return torch.stack([convert_channels(grid_view(x)[None], colour)[0] for x in xs[:GRID_IMAGES]])

        save_png(image_grid([on_grid(clean), on_grid(noisy), on_grid(results)], scale=1), out / "grid.png")
        report["grid"] = str(out / "grid.png")
    return report


CHUNK_VALUES = 2**25  # pixel values (128 MiB as float32) read, denoised and written at a time


def _read_in_chunks(files: list[tuple[Path, Path]], *, skip_bad: bool, skipped: list[str]):
    """Items of ``files`` in lists of about :data:`CHUNK_VALUES` pixel values, read as needed; an unreadable one stops all (with ``skip_bad``: listed in ``skipped``)."""
    chunk, values = [], 0
    for path, name in files:
        try:
            pixels, info = read_image(path)
        except AekitError as e:
            if not skip_bad:
                raise skip_bad_hint(e) from None
            skipped.append(str(e))
            continue
        chunk.append(Item(path, name, torch.from_numpy(pixels).permute(2, 0, 1).contiguous(), info))
        values += pixels.size
        if values >= CHUNK_VALUES:
            yield chunk
            chunk, values = [], 0
    if chunk:
        yield chunk
