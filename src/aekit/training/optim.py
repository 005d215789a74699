"""The optimiser, the learning-rate schedule and the batches of an epoch."""

from __future__ import annotations

import math

import torch


def make_adam(params, config, device: torch.device) -> torch.optim.Adam:
    """Adam with the config's hyper-parameters (``params``: parameters, or parameter groups with
    their own "lr"), fused (one pass over each parameter per step) where this torch has the fused
    kernel for the device (CPU and MPS: torch >= 2.4), else the default."""
    params = list(params)
    kwargs = dict(lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps)
    if device.type in ("cpu", "cuda", "mps"):
        try:
            return torch.optim.Adam(params, fused=True, **kwargs)
        except RuntimeError:  # older torch: no fused kernel for this device
            pass
    return torch.optim.Adam(params, **kwargs)


def lr_factor(config, step: int, steps_per_epoch: int, time_spent: float = 0.0) -> float:
    """Multiplier of the base learning rate at optimisation step ``step`` (0-based). The cosine decays
    over the run's epochs, or over its time limit (``time_spent``: the fraction of ``train.max_minutes``
    used) when that comes first, so a run with a time budget ends its decay within the budget."""
    warm = config.warmup_epochs * steps_per_epoch
    if warm and step < warm:
        return (step + 1) / warm
    if config.schedule == "cosine":
        total = max(config.epochs * steps_per_epoch - warm, 1)
        progress = max(min(step - warm, total) / total, min(time_spent, 1.0))
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def batch_starts(n: int, batch_size: int, reference_loop: bool) -> range:
    """Start index of every batch of an epoch; the reference's loop, ``range(0, n - batch, batch)``,
    skips the last batch (7 batches of 50 on 400 images)."""
    if reference_loop:
        return range(0, n - batch_size, batch_size)
    return range(0, n, batch_size)
