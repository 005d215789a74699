"""The pictures a finished run writes into its folder: reconstructions, denoising, loss, code histogram."""

from __future__ import annotations

import torch

from ..data import map_batches, resize, take
from ..codes import decode, interpolate_images
from ..metrics import SMALL_ACTIVATION
from ..noise import SEED_START
from ..pipeline import Pipeline, RunData
from ..run_folder import RunFolder
from ..training import EpochStats, history_row
from .pictures import code_histogram_figure, image_grid, loss_figure, save_figure, save_png

SAMPLES = 64  # prior samples in samples.png (rows of 8)
STEPS = 8  # decodings along the line in interpolation.png
CODE_HISTOGRAM_IMAGES = 1000  # at most this many training images feed code_histogram.png
SHOWN = 10  # images in the reconstruction and denoising grids


@torch.no_grad()
def write_run_pictures(folder: RunFolder, model, data: RunData, pipeline: Pipeline, history: list[EpochStats],
                       *, title: str, seed: int) -> None:
    """reconstructions.png and, for denoising runs, denoising.png (of held-out images when there are
    any, shown at the data's own resolution), loss.png and code_histogram.png."""
    use_test = len(data.test_x) > 0
    index = (data.test_index if use_test else data.train_index)[:SHOWN]
    fitted = take(data.test_x if use_test else data.train_x, range(len(index)))  # working size
    # resize: show the originals at their own resolution; crop/pad: as fitted
    originals = take(data.data.images, index) if pipeline.fit == "resize" else fitted
    device = next(model.parameters()).device

    def upsized(x: torch.Tensor) -> torch.Tensor:
        return resize(model(x.to(device)).recon.float().cpu(), tuple(originals.shape[-2:]), pipeline.method)

    save_png(image_grid([originals, upsized(fitted)]), folder / "reconstructions.png")
    if pipeline.corrupt is not None:
        gen = torch.Generator(device=device).manual_seed(seed + SEED_START)
        noisy, _ = pipeline.view(take(data.data.images, index).to(device), gen)
        noisy = noisy.cpu()
        shown = resize(noisy, tuple(originals.shape[-2:]), pipeline.method)
        save_png(image_grid([originals, shown, upsized(noisy)]), folder / "denoising.png")
    save_figure(loss_figure([history_row(s) for s in history], title=title, selection=getattr(history, "selection", None)),
                folder / "loss.png")
    if model.prior is not None:  # a generative model: new images from its prior, and a walk between two people
        write_generative_pictures(folder, model, data, seed=seed)
    n = min(len(data.train_x), CODE_HISTOGRAM_IMAGES)
    codes = map_batches(lambda x: model(x).code, take(data.train_x, range(n)), device)
    save_figure(code_histogram_figure(codes, SMALL_ACTIVATION), folder / "code_histogram.png")


@torch.no_grad()
def write_generative_pictures(folder: RunFolder, model, data: RunData, seed: int = 0) -> None:
    """samples.png (64 images decoded from the prior, drawn with ``seed``: the run's) and interpolation.png (a held-out face,
    eight decodings along the line between its code and that of a face of another person, that face)."""
    h, w = model.config.input_size
    z = torch.randn(SAMPLES, model.code_size(h, w), generator=torch.Generator().manual_seed(seed))
    samples = decode(model, z)
    save_png(image_grid(list(samples.split(8))), folder / "samples.png")
    index = data.test_index if len(data.test_index) else data.train_index
    labels = data.data.labels
    first = index[0]
    other = next((i for i in index if labels is None or labels[i] != labels[first]), index[-1])
    fitted = take(data.fitted, [first, other])
    save_png(image_grid([interpolate_images(model, fitted[0], fitted[1], STEPS)]), folder / "interpolation.png")
