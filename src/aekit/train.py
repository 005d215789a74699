"""One plain training loop, and evaluation on held-out images.

The loop follows the reference: each epoch shuffles the training set, takes batches in order,
and reports the *average loss per sample* = the epoch's summed per-sample losses / the number of
training images, plus the mean code activation. With ``reference_loop`` it reproduces the
reference's ``for i in range(0, N - batch, batch)``, which skips the last batch (7 batches of 50
on 400 images) yet still divides by N.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from .config import TrainConfig
from .data import epoch_batches
from .errors import ConfigError
from .metrics import image_metrics


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, then Apple's MPS, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r}: not a device (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: MPS is not available on this machine")
    return dev


def batch_starts(n: int, batch_size: int, reference_loop: bool) -> range:
    """Start index of every batch of an epoch."""
    if reference_loop:
        return range(0, n - batch_size, batch_size)
    return range(0, n, batch_size)


# prepare(clean_batch, generator) -> (model input, loss target): where corruption (denoising) and
# resizing to the working size happen. The default feeds the clean batch as both.
Prepare = Callable[[torch.Tensor, torch.Generator], "tuple[torch.Tensor, torch.Tensor]"]

COLLAPSE_STD = 1e-3  # mean per-unit std of the code across a batch below which the code has collapsed


def identity_prepare(x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return x, x


@dataclass
class EpochStats:
    epoch: int
    loss_per_sample: float  # summed per-sample losses / number of training images
    code_mean: float  # mean over batches of the batch's mean code activation
    code_std: float  # mean over batches of the per-unit std of the code across the batch (~0: collapsed)
    seconds: float  # wall time of the epoch's training steps
    heldout: dict[str, float] = field(default_factory=dict)  # loss_per_sample, code_mean, mse, psnr, ssim


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    images: torch.Tensor | torch.utils.data.Dataset,
    *,
    prepare: Prepare | None = None,
    seed: int = 0,
    batch_size: int = 200,
) -> dict[str, float]:
    """Loss per sample, code mean, MSE, PSNR and SSIM of ``model`` on ``images``.

    With ``prepare`` (e.g. corruption then resizing) the model sees the prepared input and is scored
    against the prepared target; its generator is seeded with ``seed``, so every call sees the same
    inputs. ``images`` may be a Dataset (streaming); metrics are accumulated batch by batch.
    """
    prepare = prepare or identity_prepare
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    total, code_sum, n_codes, metric_sums = 0.0, 0.0, 0, {}
    n = len(images)
    for batch in epoch_batches(images, torch.arange(n), range(0, n, batch_size), batch_size):
        x, target = prepare(batch.to(device), gen)
        out = model(x, target)
        total += float(out.per_sample.sum())
        code_sum += float(out.code.sum())
        n_codes += out.code.numel()
        for k, v in image_metrics(out.recon.float().cpu(), target.float().cpu()).items():  # batch means
            metric_sums[k] = metric_sums.get(k, 0.0) + v * len(x)
    model.train(was_training)
    return {
        "loss_per_sample": total / n,
        "code_mean": code_sum / n_codes,
        **{k: v / n for k, v in metric_sums.items()},
    }


def fit(
    model: torch.nn.Module,
    train_images: torch.Tensor | torch.utils.data.Dataset,
    config: TrainConfig,
    *,
    seed: int = 1000,
    test_images: torch.Tensor | torch.utils.data.Dataset | None = None,
    prepare: Prepare | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[EpochStats]:
    """Train ``model`` on ``train_images`` (N, C, H, W) in [0, 1]; returns one record per epoch.

    ``prepare(batch, generator)`` turns each clean batch into (model input, loss target); the
    generator is seeded from ``seed``, like the shuffling, so corruption is reproducible.
    Held-out metrics on ``test_images`` are computed every ``config.eval_every`` epochs and
    after the last one. ``on_epoch`` is the one hook: it sees each epoch's record.
    Either set of images may be a Dataset of (C, H, W) items (streaming from disk): its
    DataLoader follows the same seeded order, so a run is the same either way.
    """
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    prepare = prepare or identity_prepare
    n = len(train_images)
    starts = batch_starts(n, config.batch_size, config.reference_loop)
    if config.batch_size > n or len(starts) == 0:
        raise ConfigError(
            f"train.batch_size {config.batch_size} is larger than the {n} training images"
            + (" (the reference loop needs more than one batch)" if config.reference_loop else "")
        )
    model.to(device).train()
    x_all = train_images.to(device) if isinstance(train_images, torch.Tensor) else train_images
    opt = torch.optim.Adam(
        model.parameters(), lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps
    )
    shuffle = torch.Generator().manual_seed(seed)
    noise = torch.Generator(device=device).manual_seed(seed + 1)
    print_line = log or (lambda s: print(s, flush=True))
    history: list[EpochStats] = []
    warned_collapse = False

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, unit="epoch", file=sys.stderr, dynamic_ncols=True, leave=False)
        print_line = log or (lambda s: tqdm.write(s, file=sys.stdout))

    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=shuffle).to(device)
        loss_sum = torch.zeros((), device=device)
        code_sum = torch.zeros((), device=device)
        std_sum = torch.zeros((), device=device)
        for batch in epoch_batches(x_all, order, starts, config.batch_size):
            x, target = prepare(batch.to(device), noise)
            out = model(x, target)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            code = out.code.detach()
            loss_sum += out.per_sample.detach().sum()
            code_sum += code.mean()
            if len(code) > 1:
                std_sum += code.std(0).mean()
        stats = EpochStats(
            epoch=epoch,
            loss_per_sample=float(loss_sum) / n,  # one host sync per epoch
            code_mean=float(code_sum) / len(starts),
            code_std=float(std_sum) / len(starts),
            seconds=time.perf_counter() - t0,
        )
        if not math.isfinite(stats.loss_per_sample):
            raise FloatingPointError(f"epoch {epoch}: the loss is {stats.loss_per_sample}; lower --lr")
        last = epoch == config.epochs
        if test_images is not None and len(test_images) and (
            last or (config.eval_every and epoch % config.eval_every == 0)
        ):
            stats.heldout = evaluate(model, test_images, prepare=prepare, seed=seed + 2)
        history.append(stats)
        print_line(format_epoch(stats))
        if epoch >= 5 and stats.code_std < COLLAPSE_STD and not warned_collapse:
            warned_collapse = True
            print_line(
                f"warning: the code has collapsed (epoch {epoch}: every image gets almost the same code, "
                f"mean per-unit spread {stats.code_std:.1e}), so the decoder can only learn the mean image; "
                "this happens to the reference model in about 1 run in 5: try another --seed"
            )
        if bar is not None:
            bar.set_postfix(loss=f"{stats.loss_per_sample:.4f}", refresh=False)
            bar.update(1)
        if on_epoch is not None:
            on_epoch(stats)
    if bar is not None:
        bar.close()
    return history


def format_epoch(s: EpochStats) -> str:
    """The reference's line, plus held-out figures when they were computed."""
    line = f"Epoch {s.epoch}) Average loss per sample: {s.loss_per_sample:.4f} (Code mean: {s.code_mean:.4f})"
    if s.heldout:
        h = s.heldout
        line += (
            f"  [held-out: loss per sample {h['loss_per_sample']:.4f}, "
            f"PSNR {h['psnr']:.2f} dB, SSIM {h['ssim']:.4f}]"
        )
    return line
