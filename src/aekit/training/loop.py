"""One plain training loop, in named steps: set up, restore, train one epoch, after the epoch.

The loop follows the reference: each epoch shuffles the training set, takes batches in order, and reports
the *average loss per sample* = the epoch's summed per-sample losses / the number of training images, plus
the mean code activation. With ``reference_loop`` it reproduces the reference's ``for i in range(0, N -
batch, batch)``, which skips the last batch (7 batches of 50 on 400 images) yet still divides by N.

Under torch.distributed (e.g. ``torchrun``) every process takes its share of each global batch
(``batch_size / world size`` samples), gradients are averaged by DistributedDataParallel and a
summed loss is scaled so that a step equals the single-process step on the whole batch; losses and
code statistics are summed across processes.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from typing import Callable, Iterator

import torch
from torch.nn.parallel import DistributedDataParallel

from ..config import Config, validate
from ..data import epoch_batches, kept_workers
from ..errors import AekitError
from ..metrics import code_small, collapse_warning, collapsed
from ..noise import SEED_HELDOUT, SEED_TRAINING
from ..pipeline import Pipeline
from ..progress import FractionBar, say, shows
from .averaging import averaged, averaging
from .data_init import choose_start, wants_data_init
from .devices import amp_warning, autocast_for, resolve_amp
from .distributed import Distributed
from .evaluate import evaluate
from .history import EpochContext, EpochStats, History, format_epoch
from .optim import batch_starts, lr_factor, make_adam
from .preflight import batch_size, preflight, train_config, user_images
from .selection import Selection, carve, weights_copy
from .snapshot import restore, snapshot


def fit(
    model: torch.nn.Module,
    train_images,
    config=None,
    *,
    seed: int = 1000,
    test_images=None,
    val_images=None,
    pipeline: Pipeline | None = None,
    on_epoch: Callable[[EpochContext], None] | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    state: dict | None = None,
) -> History:
    """Train ``model`` on ``train_images`` (N, C, H, W) in [0, 1] (or a streaming Dataset of (C, H, W) items) with a
    :class:`~aekit.TrainConfig` (or a dict of its fields; None: the defaults); returns one record per epoch.
    ``pipeline`` is what the model sees of each clean batch (augmentation, corruption, fitting to the working size;
    default: the config's flips and shifts of the images as they are); its generator is seeded from ``seed``, like
    the shuffling, so a run is reproducible. Held-out metrics on ``test_images`` are computed every
    ``config.eval_every`` epochs and after the last one, for the record only. With ``config.select`` the model is
    selected on ``val_images`` (default: a seeded random ``config.val_fraction`` of ``train_images``, held out from
    training) (:mod:`aekit.training.selection`): the start and every epoch are scored, training stops after
    ``config.early_stop`` epochs without improvement, and ``model`` ends with the best weights
    (``History.selection`` says which). ``on_epoch(context)`` is the one hook (:class:`EpochContext`). ``state`` (a
    snapshot) continues a run exactly where it stopped. ``progress``: a progress bar (None: when stderr is a
    terminal). ``model`` ends in eval mode. A VAE's draws use torch's global generator: seed it to repeat a fit.
    """
    config = train_config(config)  # a dict or None too; types and choices checked
    validate(Config(seed=seed, model=model.config, train=config), where="fit")  # what the CLI refuses, refused here
    if pipeline is None:  # a direct call: the images as given (NumPy too), checked
        train_images, val_images, test_images = user_images(model, train_images, val_images, test_images)
    if config.select and val_images is None:  # no validation split given: carve one (aekit.train gives its own)
        train_images, val_images = carve(train_images, config.val_fraction, seed)
    with kept_workers(train_images, val_images):  # a streamed dataset's workers stay between epochs (not the held-out
        # images': every train.eval_every epochs, their workers would wait idle, each holding its own torch under spawn)
        trainer = _Trainer(model, train_images, config, seed=seed, pipeline=pipeline, log=log, state=state,
                           val_images=val_images)
        with trainer.progress_bar(progress):
            for epoch in range(trainer.first_epoch, config.epochs + 1):
                stats = trainer.train_epoch(epoch)
                trainer.after_epoch(stats, test_images, on_epoch)
                if trainer.history.stopped:
                    break
        trainer.finish()
    model.eval()  # as it would be used: with the best (or averaged) weights, no training-time noise
    return trainer.history



def _checked(done: int, world: int) -> bool:
    """Whether the clock is read after batch ``done``: every batch on one process; on several, which must
    agree (a collective), after batches 1, 2, 4, ... 32 and every 32nd, so a long epoch stops near the limit
    without a host sync every step."""
    return world == 1 or done & (done - 1) == 0 or done % 32 == 0

class _Trainer:
    """The state of one :func:`fit` call, and its steps."""

    def __init__(self, model, images, config, *, seed: int, pipeline: Pipeline | None, log, state: dict | None,
                 val_images=None):
        # --- set up ---------------------------------------------------------------------------
        self.model, self.config, self.seed = model, config, seed
        self.pipeline = pipeline if pipeline is not None else Pipeline.for_training(config)
        self.dist = dist = Distributed.current()
        self.n = n = len(images)
        self.batch_size = batch_size(config, n)
        self.starts = batch_starts(n, self.batch_size, config.reference_loop)
        self.device = device = preflight(config, n, dist)
        if config.threads:  # at most one per core: a run folder from elsewhere may ask for thousands
            torch.set_num_threads(min(config.threads, os.cpu_count() or config.threads))
        self.print = (log or (lambda s: print(s, flush=True))) if dist.rank == 0 else (lambda s: None)
        if self.batch_size < config.batch_size:
            self.print(f"note: train.batch_size {config.batch_size} is larger than the {n} training images: "
                       f"each step takes all {n}")
        self.amp, why = resolve_amp(config.amp, device, getattr(model, "float32_because", None))
        if config.amp == "auto":  # aekit.train resolves it first and says so; a direct fit() says it here
            self.print(f"Precision: {'float32' if self.amp == 'off' else self.amp} ({why})")
        if amp_warning(self.amp, device):
            self.print(amp_warning(self.amp, device))
        self.autocast = autocast_for(self.amp, device)
        model.to(device).train()
        self.selection = None
        if config.select and val_images is not None and len(val_images):
            self.selection = Selection(model, val_images, self.pipeline, seed=seed, patience=config.early_stop)
        if state is None and config.init_from and self.selection is not None:  # aekit.train loaded its weights
            self.selection.start_setup = f"the weights of {config.init_from} (train.init_from)"
        if state is None and wants_data_init(model, config):  # before DDP wraps the model (it broadcasts rank 0's)
            for line in choose_start(model, images, self.selection, pipeline=self.pipeline, seed=seed, device=device,
                                     decide_flips=pipeline is None and config.hflip == "auto"):  # fit()'s own
                self.print(line)
        self.net = model  # the module of the training forward; `model` itself is saved, evaluated, checkpointed
        if dist.world > 1:  # a 1-channel conv's gradient has strides DDP's check calls different, harmlessly
            warnings.filterwarnings("ignore", "Grad strides do not match bucket view strides", UserWarning)
            self.net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if config.compile:  # the DDP module itself, as PyTorch recommends (DDPOptimizer splits at its buckets)
            self.net = torch.compile(self.net)
        self.images = images.to(device) if isinstance(images, torch.Tensor) else images
        self.opt = make_adam(model.param_groups(config.lr), config, device)
        steps = len(self.starts)
        self.started = time.perf_counter()
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda step: lr_factor(config, step, steps,
                                                                                        self.time_spent()))
        # fp16: scale the loss so small gradients survive, and skip steps whose gradients overflow
        self.scaler = torch.amp.GradScaler(device.type) if self.amp == "fp16" else None
        self.shuffle = torch.Generator().manual_seed(seed)  # the same order on every process
        self.noise = torch.Generator(device=device).manual_seed(seed + SEED_TRAINING + 7919 * dist.rank)  # per process
        # DDP averages gradients over processes; a summed loss must be summed over them too
        self.loss_scale = dist.world if model.loss_is_sum else 1
        self.history, self.first_epoch, self.final_state = History(), 1, None
        self.warned_collapse, self.log, self.bar, self.cut = False, log, None, ""
        self.average = averaging(model, config.ema)  # train.ema: the weights validated, evaluated and kept
        if state is not None:
            self.restore(state)
        elif self.selection is not None:
            start = self.selection.score_start()
            self.print(f"Model selection on {len(val_images)} validation images: the start scores "
                       f"{start['loss_per_sample']:.4f} (PSNR {start['psnr']:.2f} dB)")

    def time_spent(self) -> float:
        """The fraction of ``train.max_minutes`` used so far (0 without a time limit)."""
        c = self.config
        return (time.perf_counter() - self.started) / 60 / c.max_minutes if c.max_minutes else 0.0

    def restore(self, state: dict) -> None:
        restore(self, state)

    def snapshot(self) -> dict:
        return snapshot(self)

    @contextlib.contextmanager
    def progress_bar(self, show: bool | None) -> Iterator[None]:
        """A bar over the epochs on rank 0 that moves with each batch (2.5/10: half of the third epoch done; epoch lines
        print above it); None: on a terminal only, not in a log."""
        if shows(show) and self.dist.rank == 0:
            self.bar = FractionBar(self.config.epochs, initial=self.first_epoch - 1, unit="epoch")
            self.print = say(self.log)
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
        sums, done = torch.zeros(4, device=device), 0  # loss, code mean, code spread, small-code fraction; batches
        c = self.config  # a long epoch stops at the time limit (several processes agree on it)
        deadline = self.started + 60 * c.max_minutes if c.max_minutes else math.inf
        batches = [order[start : start + bs] for start in self.starts]
        sizes = [len(b) for b in batches]  # of the whole batch, whatever share of it this process takes
        if dist.world > 1:
            batches = [b.tensor_split(dist.world)[dist.rank] for b in batches]
        for x, size in zip(epoch_batches(self.images, batches), sizes):
            sums, done = sums + self.step(x.to(device), size), done + 1
            if self.bar is not None:  # no host sync: the bar moves as the steps are queued
                self.bar.at(epoch - 1 + done / len(sizes))
            if deadline < math.inf and _checked(done, dist.world) and dist.agree(time.perf_counter() >= deadline, device):
                break
        loss, code, spread, small = (float(v) for v in dist.sum(*sums.unbind()))
        k, whole = done, done == len(sizes)  # a whole epoch's loss per sample divides by N, as the reference does
        self.cut = "" if whole else f" (its first {done} of {len(sizes)} batches: the epoch was longer than the limit)"
        stats = EpochStats(epoch=epoch, loss_per_sample=loss / (self.n if whole else sum(sizes[:done])), code_mean=code / k,
                           code_std=spread / k, seconds=time.perf_counter() - t0, code_small=small / k)
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
        if self.average is not None:
            self.average.update(self.model)
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
            bool(c.max_minutes) and (time.perf_counter() - self.started + stats.seconds) / 60 >= c.max_minutes,
            self.device,  # stops when another epoch like this one would pass the limit: the run ends within it
        )
        last = epoch == c.epochs or out_of_time
        with averaged(self.average, self.model):  # the weights that are kept: the average, with train.ema
            if test_images is not None and len(test_images) and (last or (c.eval_every and epoch % c.eval_every == 0)):
                stats.heldout = evaluate(self.model, test_images, pipeline=self.pipeline, seed=self.seed + SEED_HELDOUT)
            if self.selection is not None:
                stats.validation = self.selection.score()
                self.selection.consider(epoch, stats.validation)
        self.history.append(stats)
        self.print(format_epoch(stats))
        if collapsed(epoch, stats.code_std) and not self.warned_collapse:
            self.warned_collapse = True
            self.print("warning: " + collapse_warning(epoch, stats.code_std))
        if out_of_time:
            self.history.stopped = f"time limit of {c.max_minutes:g} minutes reached after epoch {epoch}{self.cut}"
        elif self.selection is not None and self.selection.exhausted:
            self.history.stopped = (f"early stop after epoch {epoch}: no better validation loss in "
                                    f"{self.selection.since_best} epochs")
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{stats.loss_per_sample:.4f}", refresh=False)
            self.bar.at(epoch)
        if on_epoch is not None:
            on_epoch(EpochContext(stats, self.history, self))
        if self.history.stopped:
            self.print(self.history.stopped)

    def finish(self) -> None:
        """End with the selected (or else the averaged) weights; the last ones stay in the snapshot, for a resume."""
        if self.selection is None or self.selection.best_state is None:
            if self.average is not None:
                self.final_state = weights_copy(self.model)
                self.model.load_state_dict(self.average.average)
            return
        self.final_state = weights_copy(self.model)
        self.model.load_state_dict(self.selection.best_state)
        self.history.selection = self.selection.summary(len(self.history))
        chosen = self.selection.best_epoch
        self.print(f"Model selection: the weights of {'the start' if chosen == 0 else f'epoch {chosen}'} "
                   f"(validation loss {self.selection.best:.4f}"
                   + (f"; the start: {self.selection.start['loss_per_sample']:.4f})" if self.selection.start else ")"))
