"""The data-dependent start fit() makes before its first step (``train.data_init`` or a model's
``needs_data_init``): the conv model calibrates its code layer, the hybrid sets its linear parts to PCA."""

from __future__ import annotations

import torch

from ..data import epoch_batches
from ..pipeline import Pipeline


def wants_data_init(model: torch.nn.Module, config) -> bool:
    """Whether fit() initialises ``model`` from the data: ``train.data_init``, or a model that always
    starts that way (``needs_data_init``, e.g. the PCA start of ``hybrid``)."""
    return bool(config.data_init or model.needs_data_init)


@torch.no_grad()
def data_init(model: torch.nn.Module, images, *, pipeline: Pipeline | None = None, seed: int = 1000,
              device: torch.device | str = "cpu") -> bool:
    """``model.data_init`` on up to ``model.data_init_images`` training images, chosen and passed
    through the pipeline's view (e.g. corrupted) with their own generator, so that the run's shuffling
    and noise streams are unchanged; with the pipeline's ``hflip`` their mirror images join them (the
    distribution training sees). Public so that a caller can score the starting point; returns False
    for models without one."""
    pipeline = pipeline or Pipeline()
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed + 3)
    pick = torch.randperm(len(images), generator=g)[: model.data_init_images].sort().values
    x = next(iter(epoch_batches(images, [pick]))).to(device)
    x, target = pipeline.view(x, torch.Generator(device=device).manual_seed(seed + 3))
    if pipeline.hflip:
        x, target = torch.cat([x, x.flip(-1)]), torch.cat([target, target.flip(-1)])
    was_training = model.training
    model.eval()
    try:
        return bool(model.data_init(x, target))
    finally:
        model.train(was_training)
