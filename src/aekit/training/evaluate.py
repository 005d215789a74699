"""Held-out metrics of a model: loss per sample, code statistics, MSE, PSNR and SSIM."""

from __future__ import annotations

import math

import torch

from ..data import in_batches, inference_batch_size
from ..metrics import code_small, image_metrics
from ..pipeline import Pipeline
from .preflight import user_images

ACTIVE_VARIANCE = 0.01  # a latent unit is active when its posterior mean varies this much across images


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    images,
    *,
    pipeline: Pipeline | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> dict[str, float]:
    """Loss per sample, code mean, fraction of small code values, MSE, PSNR and SSIM of ``model`` on
    ``images`` (a tensor or a streaming Dataset), accumulated batch by batch.

    With a ``pipeline`` the model sees its view of the images (e.g. corrupted, then resized) and is
    scored against its target; the corruption's generator is seeded with ``seed``, so every call sees
    the same inputs, and the corrupted input itself is scored too (``input_psnr`` ...).

    A generative model (one with a ``prior``, the VAE) is also scored as one: ``nelbo`` (the negative
    ELBO per image in nats: the reconstruction term of the posterior mean's decoding plus the KL, at
    beta 1), ``bits_per_dim`` (nelbo / (C x H x W x ln 2)), its parts ``reconstruction`` and ``kl``, and
    ``active_units`` (latent dimensions whose posterior mean varies across the images: variance > 0.01).
    """
    corrupted = pipeline is not None and pipeline.corrupt is not None
    if pipeline is None:  # images given as they are (NumPy too): checked against the model
        images = user_images(model, images, names=("images",))
    pipeline = pipeline or Pipeline()
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    total, code_sum, n_codes, sums, small = 0.0, 0.0, 0, {}, 0.0
    parts: dict[str, float] = {}
    moments = None  # per code unit: sum and sum of squares over the images (active units)
    spread = None  # per value of the reconstructions and targets: sums and sums of squares over the images
    for batch in in_batches(images, batch_size or inference_batch_size(device)):
        x, target = pipeline.view(batch.to(device), gen)
        out = model(x, target)
        total += float(out.per_sample.sum())
        code_sum += float(out.code.sum())
        small += float(code_small(out.code)) * out.code.numel()
        n_codes += out.code.numel()
        if model.prior is not None:
            for k, v in out.parts.items():
                parts[k] = parts.get(k, 0.0) + float(v.sum())
            c = out.code.double()
            m = torch.stack([c.sum(0), c.square().sum(0)])
            moments = m if moments is None else moments + m
        r, t = out.recon.detach().double().flatten(1), target.double().flatten(1)
        if spread is not False:  # images of one size: how much the reconstructions differ from one another
            m = torch.stack([r.sum(0), r.square().sum(0), t.sum(0), t.square().sum(0)])
            spread = m if spread is None else spread + m if spread.shape == m.shape else False
        scored = {"": out.recon}
        if corrupted:  # the corrupted input itself, scored the same way: what the model improves on
            scored["input_"] = x
        for prefix, y in scored.items():
            for k, v in image_metrics(y.float().cpu(), target.float().cpu()).items():  # batch means
                sums[prefix + k] = sums.get(prefix + k, 0.0) + v * len(x)
    model.train(was_training)
    n = len(images)
    result = {
        "loss_per_sample": total / n,
        "code_mean": code_sum / n_codes,
        "code_small": small / n_codes,
        **{k: v / n for k, v in sums.items()},
    }
    if spread is not None and spread is not False and n > 1:  # 1: as varied as the targets; near 0: one image
        std = (spread[1::2] / n - (spread[0::2] / n).square()).clamp(min=0).sqrt().mean(1)
        result["recon_spread"] = float(std[0] / std[1].clamp(min=1e-12))
    if model.prior is not None and "kl" in parts:
        result.update({k: v / n for k, v in parts.items()})
        result["nelbo"] = result["reconstruction"] + result["kl"]
        c, h, w = target.shape[1:]
        result["bits_per_dim"] = result["nelbo"] / (c * h * w * math.log(2))
        variance = moments[1] / n - (moments[0] / n).square()
        result["active_units"] = int((variance > ACTIVE_VARIANCE).sum())
    return result
