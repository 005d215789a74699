"""The data-dependent start fit() makes before its first step (``train.data_init`` or a model's
``needs_data_init``): the conv model calibrates its code layer, the hybrid sets its linear parts to PCA.

The start can be taken from the training images alone or from them and their mirror images; with a
validation split (``train.select``) and flips on (``train.hflip``), or left to fit() to decide
(``"auto"`` without a given pipeline: an array says nothing about its mirror images), both starts are
scored on it and the better one is kept, so the start, itself the first candidate of model selection,
is chosen on validation too (mirror images help where the test faces are of new people, and cost a
little where few components must fit the same people); under ``"auto"`` the training then flips
exactly when the mirrored start won."""

from __future__ import annotations

import torch

from ..data import epoch_batches
from ..noise import SEED_START
from ..pipeline import Pipeline
from .selection import Selection, weights_copy


def wants_data_init(model: torch.nn.Module, config) -> bool:
    """Whether fit() initialises ``model`` from the data: ``train.data_init``, or a model that always
    starts that way (``needs_data_init``, e.g. the PCA start of ``hybrid``)."""
    return bool(not config.init_from and (config.data_init or model.needs_data_init))  # train.init_from: the trained weights


@torch.no_grad()
def data_init(model: torch.nn.Module, images, *, pipeline: Pipeline | None = None, seed: int = 1000,
              device: torch.device | str = "cpu", mirrors: bool | None = None) -> bool:
    """``model.data_init`` on up to ``model.data_init_images`` training images, chosen and passed
    through the pipeline's view (e.g. corrupted) with their own generator, so that the run's shuffling
    and noise streams are unchanged; with ``mirrors`` (default: the pipeline's ``hflip``) their mirror
    images join them (the distribution training sees). Public so that a caller can score the starting
    point; returns False for models without one."""
    pipeline = pipeline or Pipeline()
    mirrors = pipeline.hflip if mirrors is None else mirrors
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed + SEED_START)
    pick = torch.randperm(len(images), generator=g)[: model.data_init_images].sort().values
    x = next(iter(epoch_batches(images, [pick]))).to(device)
    x, target = pipeline.view(x, torch.Generator(device=device).manual_seed(seed + SEED_START))
    if mirrors:
        x, target = torch.cat([x, x.flip(-1)]), torch.cat([target, target.flip(-1)])
    was_training = model.training
    model.eval()
    try:
        return bool(model.data_init(x, target))
    finally:
        model.train(was_training)


def choose_start(model: torch.nn.Module, images, selection: Selection | None, *, pipeline: Pipeline, seed: int,
                 device: torch.device | str, decide_flips: bool = False) -> list[str]:
    """Set up the data-dependent start of ``model``: where the pipeline flips, or ``decide_flips`` (fit()
    with ``train.hflip`` "auto"), and a validation split is there, the better on validation of the
    start with and without the training images' mirror images; under ``decide_flips`` the pipeline then
    flips exactly when the mirrored start won (``pipeline.hflip`` is set). Returns what to tell the user."""
    if not ((pipeline.hflip or decide_flips) and selection is not None):
        if not data_init(model, images, pipeline=pipeline, seed=seed, device=device):
            return []
        return [f"The start: {model.registered_name} set up on the training images"
                + (" and their mirror images" if pipeline.hflip else "")]
    scores = {}
    for mirrors in (True, False):
        if not data_init(model, images, pipeline=pipeline, seed=seed, device=device, mirrors=mirrors):
            return []
        scores[mirrors] = (selection.score()["loss_per_sample"], weights_copy(model))
    best = min(scores, key=lambda m: scores[m][0])
    model.load_state_dict(scores[best][1])
    said = [f"The start: {model.registered_name} set up on the training images"
            f"{' and their mirror images' if best else ' alone'} (validation loss {scores[best][0]:.4f}; "
            f"{'without' if best else 'with'} the mirror images: {scores[not best][0]:.4f})"]
    selection.start_setup = said[0].removeprefix("The start: ")
    if decide_flips:
        pipeline.hflip = best
        said.append(f"Left-right flips: {'on' if best else 'off'} (train.hflip auto: the start "
                    f"{'with' if best else 'without'} the mirror images won on validation)")
    return said
