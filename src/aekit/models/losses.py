"""Reconstruction losses, as one table: name -> per-sample function, how a batch combines, unit.

Every loss gives one value per sample (B,); the batch loss the optimiser minimises is their sum
(``l2``, ``bce``: the reference's convention, so the gradient grows with the batch) or their mean
(``mse``, ``psnr``). "Loss per sample" = summed per-sample losses / number of images, either way.
The trainer reads :func:`is_sum` to scale a summed loss across processes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F

PSNR_EPS = 1e-10  # keeps the psnr loss finite for a perfect reconstruction (at most 100 dB)
BCE_EPS = 1e-7  # the bce loss clamps reconstructions to [eps, 1 - eps]


def _l2(diff: torch.Tensor, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * diff.square().sum(1)


def _mse(diff: torch.Tensor, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return diff.square().mean(1)


def _psnr(diff: torch.Tensor, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(diff.square().mean(1) + PSNR_EPS)


def _bce(diff: torch.Tensor, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # CUDA autocast refuses binary_cross_entropy outright (whatever the dtype): compute it outside
    outside = torch.autocast(recon.device.type, enabled=False) if recon.device.type in ("cpu", "cuda") \
        else contextlib.nullcontext()
    with outside:
        return F.binary_cross_entropy(recon.clamp(BCE_EPS, 1 - BCE_EPS).flatten(1), target.flatten(1),
                                      reduction="none").sum(1)


@dataclass(frozen=True)
class Loss:
    per_sample: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (diff, recon, target) -> (B,)
    reduction: Literal["sum", "mean"]  # how the batch loss combines the per-sample losses
    unit: str  # what one per-sample value is ({h}, {w}: the working size)
    describe: str  # one line for the docs and --help


LOSSES: dict[str, Loss] = {
    "l2": Loss(_l2, "sum", "half the summed squared error of one {h}x{w} image (tf.nn.l2_loss), per sample",
               "half the summed squared error (tf.nn.l2_loss, the reference's)"),
    "mse": Loss(_mse, "mean", "mean squared error per value, per sample", "mean squared error"),
    "bce": Loss(_bce, "sum", "summed binary cross-entropy of one {h}x{w} image, per sample",
                "summed binary cross-entropy (the Bernoulli view; outputs in (0, 1))"),
    "psnr": Loss(_psnr, "mean", "minus the PSNR in dB (peak 1), per sample",
                 "minus each image's PSNR in dB: trains for the mean of per-image PSNR"),
}
LossName = Literal[tuple(LOSSES)]  # type: ignore[valid-type]


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample reconstruction loss, shape (B,), in float32 (also under autocast).

    l2: half the sum of squared errors (``tf.nn.l2_loss`` of one sample); mse: the mean squared
    error; bce: summed binary cross-entropy (``recon`` must lie in (0, 1)); psnr: the sample's negative
    PSNR in dB (peak 1), whose batch mean is minus the mean of per-image PSNR, the figure the
    evaluation reports (NAFNet trains its denoisers so).
    """
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}")
    recon, target = recon.float(), target.float()
    return LOSSES[kind].per_sample((recon - target).flatten(1), recon, target)


def is_sum(kind: str) -> bool:
    """Whether the batch loss of ``kind`` is the sum of its per-sample losses (else their mean)."""
    return LOSSES[kind].reduction == "sum"


def batch_loss(per_sample: torch.Tensor, kind: str) -> torch.Tensor:
    """The optimised scalar: the sum or the mean of the per-sample losses, by the loss's table entry."""
    return per_sample.sum() if is_sum(kind) else per_sample.mean()


def loss_unit(kind: str, size: tuple[int, int], sparsity: float = 0.0, beta: float | None = None) -> str:
    """What a loss per sample measures; a sparse model's adds its penalty (:func:`add_sparsity`), a VAE's
    (``beta``) the KL divergence of its code."""
    h, w = size
    penalty = f", plus {sparsity:g} x the code's L1 norm (the sparsity penalty)" if sparsity else ""
    kl = f", plus {beta:g} x the KL divergence of the code from the prior (beta 1: the negative ELBO)" \
        if beta is not None else ""
    return LOSSES[kind].unit.format(h=h, w=w) + penalty + kl


def add_sparsity(per_sample: torch.Tensor, code: torch.Tensor, alpha: float, parts: dict) -> torch.Tensor:
    """The sparse autoencoder's penalty, in the book's convention: ``alpha`` x each sample's L1 norm of
    the code, added to its loss (so the summed batch loss gains alpha x the sum of the L1 norms) and
    recorded as ``parts["sparsity"]``. Unchanged when ``alpha`` is 0."""
    if not alpha:
        return per_sample
    penalty = alpha * code.abs().flatten(1).sum(1)  # (B,)
    parts["sparsity"] = penalty
    return per_sample + penalty
