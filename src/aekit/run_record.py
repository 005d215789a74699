"""What a run writes as it trains and when it ends: checkpoints, history.csv and TensorBoard each epoch
(:class:`Recorder`, the loop's ``on_epoch`` hook), what a stop keeps, and metrics.json's figures."""

from __future__ import annotations

import time

import torch

from .config import Config
from .data import take
from .models.losses import loss_unit
from .noise import SEED_HELDOUT
from .pipeline import Pipeline, RunData
from .report.tensorboard import TensorBoardLog
from .run_folder import RunFolder
from .training import Distributed, EpochContext, evaluate
from .training.checkpoints import prune, write_checkpoint
from .training.devices import machine
from .version import __version__


class Recorder:
    """The run's ``on_epoch`` hook: checkpoints ('last' on a clock and whenever a checkpoint is written,
    'best' when model selection keeps an epoch, every N epochs), history.csv and TensorBoard, written by rank 0 (snapshots are taken on every process)."""

    def __init__(self, cfg: Config, folder: RunFolder, model, preprocess: dict, main_process: bool,
                 tensorboard: TensorBoardLog | None, resumed_at: int | None = None):
        self.cfg, self.folder, self.model, self.preprocess = cfg, folder, model, preprocess
        self.main, self.tensorboard, self.fresh = main_process, tensorboard, resumed_at is None
        self.saved_epoch, self.saved_at = resumed_at or 0, time.perf_counter()  # the newest checkpoint's epoch
        self.latest: EpochContext | None = None

    def checkpoint(self, ctx: EpochContext, best: bool = False, extra: dict | None = None) -> None:
        """Write the epoch's checkpoint as 'last' (the newest complete state, what --resume reads), and as
        'best' too when ``best``."""
        st = ctx.snapshot()  # collective under torch.distributed: every process takes part
        if self.main:
            write_checkpoint(self.folder.path, self.model, st, preprocess=self.preprocess,
                             pointers=("last", "best") if best else ("last",), extra=extra)
            prune(self.folder.path, self.cfg.train.checkpoint_every)
        self.saved_at = time.perf_counter()
        self.saved_epoch = st["epoch"]

    def on_epoch(self, ctx: EpochContext) -> None:
        self.latest = ctx
        t, stats = self.cfg.train, ctx.stats
        # 'last' after the first epoch (so a run stopped early can resume), then on the clock
        due = ctx.agree(not self.saved_epoch or time.perf_counter() - self.saved_at >= t.checkpoint_seconds)
        selection = ctx.trainer.selection
        if selection is not None and selection.best_epoch == stats.epoch:  # the selection's choice, as validated
            self.checkpoint(ctx, best=True, extra={"validation_loss_per_sample": stats.validation["loss_per_sample"]})
        elif due or (t.checkpoint_every and stats.epoch % t.checkpoint_every == 0):
            self.checkpoint(ctx)
        if self.main:
            self.folder.write_history(ctx.history)
            if self.tensorboard is not None:
                self.tensorboard.log_epoch(stats)

    def put_back(self, resumable: bool = True) -> bool:
        """A run that replaces another (overwrite) and fails, or is stopped before its first checkpoint (one that
        ``resumable`` stops later can be resumed), leaves the folder to the run it replaces."""
        return self.main and self.fresh and not (resumable and self.saved_epoch) and self.folder.put_back()

    def interrupted(self, put_back: bool = False) -> str:
        """What a run stopped by Ctrl-C keeps: the newest checkpoint, which ``--resume`` continues."""
        done = self.latest.history[-1].epoch if self.latest is not None else self.saved_epoch
        if put_back:
            return f"Interrupted after epoch {done}, before the first checkpoint: {self.folder.path} holds the run it replaced again"
        return f"Interrupted after epoch {done}{',' if not self.saved_epoch else ';'} {self.kept()}"

    def kept(self) -> str:
        """The newest checkpoint and the command that continues from it, in words."""
        if not self.saved_epoch:
            return ("before the first checkpoint: nothing to resume (the same command with --overwrite starts again "
                    "in this folder)")
        waits = f" (the run it replaces waits in {self.folder.replaced} until it completes)" if self.folder.replaced.is_dir() else ""
        return f"the newest checkpoint is epoch {self.saved_epoch}: aekit train --resume {self.folder.path} continues from it{waits}"

    def finish(self) -> None:
        """The final state as 'last' (for --resume --epochs N), unless it was just written."""
        if self.latest is not None and self.saved_epoch != self.latest.history[-1].epoch:
            self.checkpoint(self.latest)
        if self.tensorboard is not None:
            self.tensorboard.close()


NOISE_SAMPLE = 64  # training images the measured noise level is taken from


def noise_std(pipeline: Pipeline, images, seed: int) -> float:
    """The standard deviation of (model input - target) at the working size: the noise the model sees
    (0 without noise; below the nominal sigma where clipping to [0, 1] cuts it, or a resize shrinks it)."""
    if pipeline.corrupt is None:
        return 0.0
    x, target = pipeline.view(take(images, range(min(len(images), NOISE_SAMPLE))), torch.Generator().manual_seed(seed))
    return float((x - target).std())


def final_metrics(cfg: Config, model, data: RunData, pipeline: Pipeline, history, seconds: float) -> dict:
    """metrics.json: the last epoch's figures, the model on every training image, the held-out figures."""
    last = history[-1]
    train_x, test_x, _ = data.model_inputs(pipeline)
    # denoising: corrupted inputs (seeded), scored against the clean images; else the images themselves
    scored = pipeline if pipeline.corrupt else None
    train_eval = evaluate(model, train_x, pipeline=scored, seed=cfg.seed + SEED_HELDOUT)
    heldout = None
    if len(test_x):  # the final model's (with train.select: the chosen weights, not the last epoch's)
        heldout = {**evaluate(model, test_x, pipeline=scored, seed=cfg.seed + SEED_HELDOUT), "images": len(test_x)}
    return {
        "status": "complete",
        "aekit_version": __version__,
        "name": cfg.name,
        "epochs": last.epoch,
        "seconds": round(seconds, 2),
        "loss_unit": loss_unit(cfg.model.loss, cfg.model.input_size, cfg.model.sparsity, getattr(cfg.model, "beta", None)),
        "noise": cfg.noise.spec(),
        "noise_where": cfg.noise.where,
        "noise_std_at_working_size": noise_std(pipeline, train_x, cfg.seed),
        "precision": "float32" if cfg.train.amp == "off" else cfg.train.amp,
        "machine": machine(next(model.parameters()).device),
        "processes": Distributed.current().world,  # a resume needs as many
        "train": {
            "images": len(data.train_x),
            "loss_per_sample_last_epoch": last.loss_per_sample,  # as the loop reported it
            "code_mean_last_epoch": last.code_mean,
            "code_small_last_epoch": last.code_small,  # fraction of code values below metrics.SMALL_ACTIVATION
            **train_eval,  # after training, in eval mode, over every training image
        },
        "heldout": heldout,
        "selection": None if history.selection is None else {**history.selection, "how": data.validation},
        "stopped": history.stopped,
    }
