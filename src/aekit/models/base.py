"""What every autoencoder shares: the output type the trainer reads and the loss functions."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class AEOutput:
    loss: torch.Tensor  # scalar that the optimiser minimises (the batch loss in the config's unit)
    per_sample: torch.Tensor  # (B,) each sample's loss in the same unit; sum / N = "loss per sample"
    recon: torch.Tensor  # (B, C, H, W) reconstruction in [0, 1]
    code: torch.Tensor  # (B, code_length) the code
    parts: dict[str, torch.Tensor] = field(default_factory=dict)  # named (B,) loss terms


PSNR_EPS = 1e-10  # keeps the psnr loss finite for a perfect reconstruction (at most 100 dB)


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample reconstruction loss, shape (B,).

    l2:  half the sum of squared errors (``tf.nn.l2_loss`` of one sample);
    mse: mean squared error over the sample's values;
    bce: summed binary cross-entropy (the Bernoulli view; ``recon`` must lie in (0, 1));
    psnr: the sample's negative PSNR in dB (peak 1): 10 log10(mse). Its mean over a batch is minus the
          mean of per-image PSNR, the figure the evaluation reports (NAFNet trains its denoisers so).
    """
    recon, target = recon.float(), target.float()  # in float32 also under autocast (train.amp)
    diff = (recon - target).flatten(1)
    if kind == "l2":
        return 0.5 * diff.square().sum(1)
    if kind == "mse":
        return diff.square().mean(1)
    if kind == "psnr":
        return 10 * torch.log10(diff.square().mean(1) + PSNR_EPS)
    if kind == "bce":
        eps = 1e-7
        # CUDA autocast refuses binary_cross_entropy outright (whatever the dtype): compute it outside
        outside = torch.autocast(recon.device.type, enabled=False) if recon.device.type in ("cpu", "cuda") \
            else contextlib.nullcontext()
        with outside:
            return F.binary_cross_entropy(
                recon.clamp(eps, 1 - eps).flatten(1), target.flatten(1), reduction="none"
            ).sum(1)
    raise ValueError(f"unknown loss {kind!r}")


def batch_loss(per_sample: torch.Tensor, kind: str) -> torch.Tensor:
    """The optimised scalar: a sum over the batch for l2/bce (as the reference), a mean for mse and psnr."""
    return per_sample.mean() if kind in ("mse", "psnr") else per_sample.sum()


def add_sparsity(per_sample: torch.Tensor, code: torch.Tensor, alpha: float, parts: dict) -> torch.Tensor:
    """The sparse autoencoder's penalty, in the book's convention: ``alpha`` x each sample's L1 norm of
    the code, added to its loss (so the summed batch loss gains alpha x the sum of the L1 norms) and
    recorded as ``parts["sparsity"]``. Unchanged when ``alpha`` is 0."""
    if not alpha:
        return per_sample
    penalty = alpha * code.abs().flatten(1).sum(1)  # (B,)
    parts["sparsity"] = penalty
    return per_sample + penalty


class Autoencoder(nn.Module):
    """Base class: subclasses define ``encode`` and ``decode``; the loss is computed here."""

    registered_name: str = ""
    decodes_codes: bool = True  # False when decode() needs more than the code (e.g. skip connections)
    prior: str | None = None  # the distribution codes are drawn from for sampling ("normal" for the VAE), if any

    def __init__(self, config):
        super().__init__()
        self.config = config

    def code_size(self, height: int, width: int) -> int:
        """Length of the code of one (C, height, width) image."""
        return self.config.code_length

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, code_length)
        raise NotImplementedError

    @torch.no_grad()
    def data_init(self, x: torch.Tensor, target: torch.Tensor | None = None) -> bool:
        """Data-dependent initialisation from a batch of model inputs ``x`` and their loss targets
        ``target`` (``train.data_init``); returns False when the architecture has none."""
        return False

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # (B, code_length) -> (B, C, H, W)
        raise NotImplementedError

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> AEOutput:
        """Reconstruct ``x``; the loss compares with ``target`` (default ``x``; clean images when denoising)."""
        target = x if target is None else target
        code = self.encode(x)
        recon = self.decode(code)
        rec = reconstruction_loss(recon, target, self.config.loss)
        return self.output(recon, code, rec, {"reconstruction": rec})

    def output(self, recon: torch.Tensor, code: torch.Tensor, per_sample: torch.Tensor,
               parts: dict[str, torch.Tensor]) -> AEOutput:
        """The AEOutput of a forward pass: ``per_sample`` (B,) plus the sparsity penalty on ``code``,
        and the batch loss in the config's convention (sum, or mean for mse)."""
        per_sample = add_sparsity(per_sample, code, self.config.sparsity, parts)
        return AEOutput(
            loss=batch_loss(per_sample, self.config.loss),
            per_sample=per_sample,
            recon=recon,
            code=code.flatten(1),
            parts=parts,
        )
