"""One plain training loop, in named steps: set up, restore, train one epoch, after the epoch.

The loop follows the reference: each epoch shuffles the training set, takes batches in order,
and reports the *average loss per sample* = the epoch's summed per-sample losses / the number of
training images, plus the mean code activation. With ``reference_loop`` it reproduces the
reference's ``for i in range(0, N - batch, batch)``, which skips the last batch (7 batches of 50
on 400 images) yet still divides by N.

Under torch.distributed (e.g. ``torchrun``) every process takes its share of each global batch
(``batch_size / world size`` samples), gradients are averaged by DistributedDataParallel and a
summed loss is scaled so that a step equals the single-process step on the whole batch; losses and
code statistics are summed across processes.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..data import epoch_batches
from ..errors import AekitError, ConfigError
from ..metrics import COLLAPSE_STD, code_small
from ..pipeline import Pipeline
from .data_init import data_init, wants_data_init
from .devices import amp_warning, autocast_for, resolve_amp, resolve_device
from .distributed import Distributed
from .evaluate import evaluate
from .history import EpochStats, History, format_epoch
from .optim import batch_starts, lr_factor, make_adam


@dataclass
class EpochContext:
    """What the ``on_epoch`` hook of :func:`fit` sees after every epoch."""

    stats: EpochStats  # this epoch's record (also the last item of ``history``)
    history: History  # every epoch so far, a resumed run's earlier epochs included
    trainer: "_Trainer"

    def snapshot(self) -> dict:
        """The full training state (for a checkpoint): collective under torch.distributed."""
        return self.trainer.snapshot()

    def agree(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on any (decisions that depend on a clock)."""
        return self.trainer.dist.agree(flag, self.trainer.device)


def fit(
    model: torch.nn.Module,
    train_images,
    config,
    *,
    seed: int = 1000,
    test_images=None,
    pipeline: Pipeline | None = None,
    on_epoch: Callable[[EpochContext], None] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    state: dict | None = None,
) -> History:
    """Train ``model`` on ``train_images`` (N, C, H, W) in [0, 1] (or a streaming Dataset of (C, H, W)
    items) with a :class:`~aekit.TrainConfig`; returns one record per epoch.

    ``pipeline`` is what the model sees of each clean batch (augmentation, corruption, fitting to the
    working size; default: the config's flips and shifts of the images as they are); its generator is
    seeded from ``seed``, like the shuffling, so a run is reproducible. Held-out metrics on
    ``test_images`` are computed every ``config.eval_every`` epochs and after the last one.
    ``on_epoch(context)`` is the one hook (:class:`EpochContext`). ``state`` (a snapshot) continues a
    run exactly where it stopped.
    """
    trainer = _Trainer(model, train_images, config, seed=seed, pipeline=pipeline, log=log, state=state)
    with trainer.progress_bar(progress):
        for epoch in range(trainer.first_epoch, config.epochs + 1):
            stats = trainer.train_epoch(epoch)
            trainer.after_epoch(stats, test_images, on_epoch)
            if trainer.history.stopped:
                break
    return trainer.history


def batch_size(config, n: int) -> int:
    """The batch a step takes: ``train.batch_size``, or all ``n`` images when there are fewer (as
    PyTorch's DataLoader and Keras do); the reference loop keeps its quirk and needs more than a batch."""
    return config.batch_size if config.reference_loop else min(config.batch_size, n)


def preflight(config, n: int, dist: Distributed | None = None) -> torch.device:
    """The device training runs on, once the settings are checked against ``n`` training images and the
    processes: what :func:`fit` refuses, found before anything is written (``aekit.train`` calls it first)."""
    dist = dist or Distributed.current()
    device = resolve_device(config.device)
    if n < 1 or len(batch_starts(n, batch_size(config, n), config.reference_loop)) == 0:
        raise ConfigError(
            f"train.batch_size {config.batch_size} is larger than the {n} training images"
            + (" (the reference loop needs more than one batch)" if config.reference_loop else ""),
            keys="train.batch_size",
        )
    if batch_size(config, n) < dist.world:
        raise ConfigError(
            f"train.batch_size {config.batch_size} is smaller than the {dist.world} processes: "
            "every process needs at least one sample of each batch", keys="train.batch_size",
        )
    autocast_for(config.amp, device)
    if dist.world > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # this process's GPU (LOCAL_RANK)
    return device


class _Trainer:
    """The state of one :func:`fit` call, and its steps."""

    def __init__(self, model, images, config, *, seed: int, pipeline: Pipeline | None, log, state: dict | None):
        # --- set up ---------------------------------------------------------------------------
        self.model, self.config, self.seed = model, config, seed
        self.pipeline = pipeline if pipeline is not None else Pipeline(hflip=config.hflip, shift=config.shift)
        self.dist = dist = Distributed.current()
        self.n = n = len(images)
        self.batch_size = batch_size(config, n)
        self.starts = batch_starts(n, self.batch_size, config.reference_loop)
        self.device = device = preflight(config, n, dist)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.print = (log or (lambda s: print(s, flush=True))) if dist.rank == 0 else (lambda s: None)
        if self.batch_size < config.batch_size:
            self.print(f"note: train.batch_size {config.batch_size} is larger than the {n} training images: "
                       f"each step takes all {n}")
        self.amp, why = resolve_amp(config.amp, device)
        if config.amp == "auto":  # aekit.train resolves it first and says so; a direct fit() says it here
            self.print(f"Precision: {'float32' if self.amp == 'off' else self.amp} ({why})")
        if amp_warning(self.amp, device):
            self.print(amp_warning(self.amp, device))
        self.autocast = autocast_for(self.amp, device)
        model.to(device).train()
        if state is None and wants_data_init(model, config):  # before DDP wraps the model (it broadcasts rank 0's)
            data_init(model, images, pipeline=self.pipeline, seed=seed, device=device)
        self.net = model  # the module of the training forward; `model` itself is saved, evaluated, checkpointed
        if dist.world > 1:
            self.net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if config.compile:  # the DDP module itself, as PyTorch recommends (DDPOptimizer splits at its buckets)
            self.net = torch.compile(self.net)
        self.images = images.to(device) if isinstance(images, torch.Tensor) else images
        self.opt = make_adam(model.param_groups(config.lr), config, device)
        steps = len(self.starts)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda step: lr_factor(config, step, steps))
        # fp16: scale the loss so small gradients survive, and skip steps whose gradients overflow
        self.scaler = torch.amp.GradScaler(device.type) if self.amp == "fp16" else None
        self.shuffle = torch.Generator().manual_seed(seed)  # the same order on every process
        self.noise = torch.Generator(device=device).manual_seed(seed + 1 + 7919 * dist.rank)  # per process
        # DDP averages gradients over processes; a summed loss must be summed over them too
        self.loss_scale = dist.world if model.loss_is_sum else 1
        self.history = History()
        self.best, self.since_best, self.first_epoch = math.inf, 0, 1
        self.started = time.perf_counter()
        self.warned_collapse = False
        self.log, self.bar = log, None
        if state is not None:
            self.restore(state)

    def restore(self, state: dict) -> None:
        """Continue exactly where a snapshot was taken: weights, optimiser, schedule, random streams."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):  # checkpoints without one start a fresh scaler
            self.scaler.load_state_dict(state["scaler"])
        self.shuffle.set_state(state["shuffle_rng"])
        if len(state["noise_rng"]) != self.dist.world:
            raise ConfigError(
                f"the checkpoint of epoch {state['epoch']} was written by {len(state['noise_rng'])} process(es); "
                f"resume it with as many (nproc), not {self.dist.world}", keys="nproc",
            )
        self.noise.set_state(state["noise_rng"][self.dist.rank].to(self.noise.get_state().device))
        torch.set_rng_state(state["torch_rng"])
        self.history.extend(EpochStats(**h) for h in state["history"])
        self.best, self.since_best = float(state["best"]), int(state["since_best"])
        self.first_epoch = int(state["epoch"]) + 1

    def snapshot(self) -> dict:
        """Everything needed to continue exactly (tensors and plain values: loads with weights_only)."""
        return {
            "epoch": self.history[-1].epoch,
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "shuffle_rng": self.shuffle.get_state(),
            "noise_rng": self.dist.gather(self.noise.get_state(), self.device),
            "torch_rng": torch.get_rng_state(),
            "history": [vars(h) for h in self.history],
            "best": self.best,
            "since_best": self.since_best,
            **({"scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
        }

    @contextlib.contextmanager
    def progress_bar(self, show: bool) -> Iterator[None]:
        """A progress bar over the epochs on rank 0, while training (epoch lines print above it)."""
        if show and self.dist.rank == 0:
            self.bar = tqdm(total=self.config.epochs, initial=self.first_epoch - 1, unit="epoch", file=sys.stderr,
                            dynamic_ncols=True, leave=False)
            self.print = self.log or (lambda s: tqdm.write(s, file=sys.stdout))
        try:
            yield
        finally:
            if self.bar is not None:
                self.bar.close()

    # --- one epoch ----------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> EpochStats:
        """Shuffle, then one optimisation step per batch; the epoch's record (one host sync)."""
        t0 = time.perf_counter()
        device, dist, bs = self.device, self.dist, self.batch_size
        order = torch.randperm(self.n, generator=self.shuffle).to(device)
        sums = torch.zeros(4, device=device)  # loss, code mean, code spread, small-code fraction
        batches = [order[start : start + bs] for start in self.starts]
        sizes = [len(b) for b in batches]  # of the whole batch, whatever share of it this process takes
        if dist.world > 1:
            batches = [b.tensor_split(dist.world)[dist.rank] for b in batches]
        for x, size in zip(epoch_batches(self.images, batches), sizes):
            sums += self.step(x.to(device), size)
        loss, code, spread, small = (float(v) for v in dist.sum(*sums.unbind()))
        k = len(self.starts)
        stats = EpochStats(epoch=epoch, loss_per_sample=loss / self.n, code_mean=code / k, code_std=spread / k,
                           seconds=time.perf_counter() - t0, code_small=small / k)
        if not math.isfinite(stats.loss_per_sample):
            raise AekitError(f"epoch {epoch}: the loss is {stats.loss_per_sample}; lower train.lr", keys="train.lr")
        return stats

    def step(self, x: torch.Tensor, size: int) -> torch.Tensor:
        """One optimisation step on a clean batch (this process's share of a batch of ``size``);
        returns its (summed loss, code mean, code spread, small-code fraction) contributions."""
        x, target = self.pipeline.train_pair(x, self.noise)
        with self.autocast():  # train.amp: forward and loss in bf16/fp16 where safe; a no-op when off
            out = self.net(x, target)
        self.opt.zero_grad(set_to_none=True)
        loss = (out.loss * self.loss_scale).float()
        if self.scaler is None:
            loss.backward()
            self.opt.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)  # unscales; skips the step when a gradient is inf or nan
            self.scaler.update()
        with warnings.catch_warnings():  # the schedule follows the step count, also past a skipped fp16 step
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            self.sched.step()
        code = out.code.detach().float()  # accumulated in float32, whatever the autocast dtype
        share = len(code) / size  # 1 on one process: the shares' sum over processes is the batch mean
        zero = torch.zeros((), device=code.device)
        return torch.stack([
            out.per_sample.detach().float().sum(),
            code.mean() * share if len(code) else zero,
            code.std(0).mean() * share if len(code) > 1 else zero,
            code_small(code) * share if len(code) else zero,
        ])

    # --- after an epoch -----------------------------------------------------------------------
    def after_epoch(self, stats: EpochStats, test_images, on_epoch) -> None:
        """Held-out metrics when due, the stopping rules, the epoch line, the collapse warning, the hook."""
        c, epoch = self.config, stats.epoch
        out_of_time = self.dist.agree(
            bool(c.max_minutes) and (time.perf_counter() - self.started) / 60 >= c.max_minutes, self.device
        )
        last = epoch == c.epochs or out_of_time
        if test_images is not None and len(test_images) and (last or (c.eval_every and epoch % c.eval_every == 0)):
            stats.heldout = evaluate(self.model, test_images, pipeline=self.pipeline, seed=self.seed + 2)
            if stats.heldout["loss_per_sample"] < self.best:
                self.best, self.since_best = stats.heldout["loss_per_sample"], 0
            else:
                self.since_best += 1
        self.history.append(stats)
        self.print(format_epoch(stats))
        if epoch >= 5 and stats.code_std < COLLAPSE_STD and not self.warned_collapse:
            self.warned_collapse = True
            self.print(
                f"warning: the code has collapsed (epoch {epoch}: every image gets almost the same code, "
                f"mean per-unit spread {stats.code_std:.1e}), so the decoder can only learn the mean image; "
                "this happens to the reference model in about 1 run in 5: try another seed, or train.data_init "
                "(calibrates the code layer on the images first)"
            )
        if out_of_time:
            self.history.stopped = f"time limit of {c.max_minutes:g} minutes reached after epoch {epoch}"
        elif c.early_stop and self.since_best >= c.early_stop:
            self.history.stopped = f"early stop after epoch {epoch}: no better held-out loss in {self.since_best} evaluations"
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{stats.loss_per_sample:.4f}", refresh=False)
            self.bar.update(1)
        if on_epoch is not None:
            on_epoch(EpochContext(stats, self.history, self))
        if self.history.stopped:
            self.print(self.history.stopped)
