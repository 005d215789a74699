"""A training run end to end: data, model, the loop, checkpoints, and the run folder (:mod:`aekit.run_folder`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import torch

from .baselines import rivals
from .config import Config, load_config, replace, working_size
from .evaluation import comparison, evaluate_run
from .errors import AekitError, ConfigError
from .data import absolute_source, take
from .files import write_json
from .models import create_model, model_class, save
from .models.losses import loss_unit
from .noise import SEED_HELDOUT
from .pipeline import Pipeline, RunData, prepare_data
from .report.page import write_report
from .report.run_pictures import write_run_pictures
from .report.tensorboard import TensorBoardLog
from .run_folder import RunFolder
from .training import Distributed, EpochContext, EpochStats, evaluate, fit, preflight
from .training.checkpoints import check_weights, prune, read_checkpoint, write_checkpoint
from .training.devices import machine, resolve_amp
from .training.agreement import check_same_config, check_same_inputs, lost_peer, on_every_process
from .typed import flatten
from .version import __version__


COMPARE_IMAGES = 500  # held-out images the end-of-run comparison scores at most


@dataclass
class RunResult:
    out: Path
    model: torch.nn.Module
    history: list[EpochStats]
    metrics: dict


def default_out(cfg: Config) -> Path:
    """runs/NAME-TIMESTAMP; a name that is not a plain file name (a path, or empty) is refused."""
    if not cfg.name or cfg.name != Path(cfg.name).name or cfg.name in (".", ".."):
        raise ConfigError(f"name {cfg.name!r}: the default run folder is runs/NAME-TIMESTAMP, so it must be "
                          "non-empty, without / (give out to put the run elsewhere)", keys=("name", "out"))
    return Path("runs") / f"{cfg.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def train(
    cfg: Config | dict | str | Path,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Train ``cfg`` (a Config, the tables of one as a dict, or a TOML file) and write its run folder;
    returns the folder, model, history and metrics.

    With ``resume`` the run in ``out`` continues exactly from its last checkpoint; ``cfg`` must be the
    run's own config.toml, except for the settings declared resumable (epochs, the time limit, the
    device, threads, compile: :func:`aekit.config.resumable_keys`). ``progress``: a progress bar (None:
    when stderr is a terminal).
    """
    t_start = time.perf_counter()
    cfg = load_config(cfg) if isinstance(cfg, (str, Path)) else Config.from_dict(cfg) if isinstance(cfg, dict) else cfg
    if not isinstance(cfg, Config):
        raise ConfigError(f"cfg: expected an aekit.Config, a dict of its tables or a TOML file, got {type(cfg).__name__}")
    dist = Distributed.current()
    main_process = dist.rank == 0
    if dist.world > 1:
        check_same_config({**flatten(cfg.to_dict()), "resume": resume})
    if out is None and not resume:
        out = default_out(cfg)  # a bad name is refused before any work
    checkpoint, state, data = on_every_process(lambda: _inputs(cfg, out, resume))  # a failure on one stops every one
    check_same_inputs(data.data, state)  # several processes: the same images and checkpoint on each (machine)
    cfg = replace(cfg, **{"model.in_channels": data.data.channels,  # data.channels decides
                          "data.source": absolute_source(cfg.data.source)})  # config.toml works from anywhere
    if data.size != tuple(cfg.model.input_size):  # a model for any size, at the images' own
        cfg = replace(cfg, **{"data.size": data.size, "model.input_size": data.size})
        if main_process:
            (log or print)(f"Working size: {data.size[0]}x{data.size[1]}, the images' own ({cfg.model.name} runs at any size)")
    if cfg.train.hflip == "auto":  # the data decides; written into config.toml
        cfg = replace(cfg, **{"train.hflip": data.data.symmetric})
    device = preflight(cfg.train, len(data.train_x), dist)  # what fit() would refuse, before anything is written
    amp, why = resolve_amp(cfg.train.amp, device, model_class(cfg.model.name).float32_because)
    if cfg.train.amp == "auto":  # the choice goes into config.toml: a resumed run keeps it, wherever it runs
        cfg = replace(cfg, **{"train.amp": amp})
    if main_process:
        (log or print)(f"Precision: {'float32' if amp == 'off' else amp} ({why})")
    torch.manual_seed(cfg.seed)  # fixes the initialisation
    model = create_model(cfg.model)
    if state is not None:  # the checkpoint's weights are this model's (a damaged or foreign file: named)
        check_weights(model, checkpoint, state)
    pipeline = Pipeline.for_run(cfg)  # before the folder: a bad noise map is refused with nothing written
    if pipeline.corrupt is not None:  # one blank image where the noise is added: a map of another shape fails here
        where = data.data.images[0].shape[-2:] if pipeline.takes_native else data.size
        pipeline.corrupt(torch.zeros(1, cfg.model.in_channels, *where), torch.Generator())
    train_x, test_x, val_x = data.model_inputs(pipeline)
    folder = RunFolder(out)
    if main_process:
        if not resume:
            folder.create(overwrite)
            folder.write_data(data.data)
        folder.write_config(cfg)
        if data.data.skipped:
            folder.write_skipped(data.data.skipped)
            (log or print)(f"Skipped {len(data.data.skipped)} unreadable image files (listed in {folder / folder.SKIPPED})")
    preprocess = {"size": list(working_size(cfg)), "resize": cfg.data.resize, "channels": cfg.model.in_channels,
                  "fit": cfg.data.fit, "crop": cfg.train.crop}
    if main_process and len(val_x):
        (log or print)(f"Validation split: {len(val_x)} training images held out for model selection ({data.validation})")
    tensorboard = TensorBoardLog.for_run(cfg, folder, model, data) if cfg.train.tensorboard and main_process else None
    recorder = _Recorder(cfg, folder, model, preprocess, main_process, tensorboard, resumed_at=state and state["epoch"])
    try:
        history = fit(model, train_x, cfg.train, seed=cfg.seed, test_images=test_x if len(test_x) else None,
                      val_images=val_x, pipeline=pipeline, on_epoch=recorder.on_epoch,
                      progress=progress, log=log, state=state)
    except KeyboardInterrupt:  # Ctrl-C: say what is kept, then stop as interrupted
        if main_process:
            (log or print)(recorder.interrupted(put_back=recorder.put_back()))
        raise
    except RuntimeError as e:  # a collective's error when another process (machine) has gone
        if not lost_peer(e):
            recorder.put_back(resumable=False)
            raise
        raise AekitError(f"rank {dist.rank} of {dist.world}: another process stopped or cannot be reached (its own "
                         f"output says why); {recorder.kept()}") from None
    except AekitError as e:  # e.g. a diverged loss: the corrected command must replace this run's folder
        if resume:
            raise
        if recorder.put_back(resumable=False):
            raise type(e)(f"{e} ({folder.path} holds the run it was to replace again)", keys=e.keys) from None
        raise type(e)(f"{e} (then run again with overwrite: {folder.path} holds this failed run)",
                      keys=(*e.keys, "overwrite")) from None
    except Exception:  # an internal error: a new run that replaces another gives the folder back to it
        recorder.put_back(resumable=False)
        raise
    recorder.finish()
    model.eval()
    if not main_process:
        return RunResult(out=folder.path, model=model, history=history, metrics={})
    (folder / folder.METRICS).unlink(missing_ok=True)  # a resumed run's old one: unfinished until the new is written
    save(model, folder.path, preprocess=preprocess)
    before = sum(e.seconds for e in history if state and e.epoch <= state["epoch"])  # the epochs before a resume
    metrics = final_metrics(cfg, model, data, pipeline, history, before + time.perf_counter() - t_start)
    if cfg.train.compare and len(test_x):  # what a user would pick instead, on the same held-out images
        try:
            report = evaluate_run(folder, baselines=rivals(pipeline.corrupt is not None), limit=COMPARE_IMAGES,
                                  device=str(device))
            metrics["comparison"] = comparison(report)
        except Exception as e:  # an extra after the training: its failure must not cost the run its metrics and report
            metrics["comparison_error"] = f"{type(e).__name__}: {e}"
            (log or print)(f"warning: the end-of-run comparison failed ({metrics['comparison_error']}); the model, "
                           f"metrics and report are written, and `aekit evaluate {folder.path} --baselines` tries it again")
    write_run_pictures(folder, model, data, pipeline, history, title=cfg.name, seed=cfg.seed)
    write_report(folder, metrics=metrics)  # before metrics.json, which marks the run complete
    write_json(folder / folder.METRICS, metrics)  # last: marks the run complete
    folder.drop_replaced()  # the run overwrite set aside, if any
    return RunResult(out=folder.path, model=model, history=history, metrics=metrics)


def _inputs(cfg: Config, out, resume: bool) -> tuple[Path | None, dict | None, RunData]:
    """The checkpoint a resume continues from, its folder and state (else None), and the prepared data, checked
    against the run's."""
    checkpoint = state = None
    if resume:
        if out is None:
            raise AekitError("resume needs the run folder to continue", keys="resume")
        RunFolder(out).check_resume(cfg)
        checkpoint, state = read_checkpoint(Path(out))
        RunFolder(out).check_checkpoint(cfg, checkpoint)
        if Distributed.current().rank == 0:
            RunFolder(out).clean_stale()
        if state["epoch"] >= cfg.train.epochs and (Path(out) / RunFolder.METRICS).exists():
            raise AekitError(f"resume {out}: the run is complete after {state['epoch']} epochs, and train.epochs "
                             f"{cfg.train.epochs} leaves nothing to do; give more to extend it",
                             keys=("resume", "train.epochs"))
    try:
        data = prepare_data(cfg)
    except AekitError as e:
        raise (RunFolder(out).data_gone(e, cfg.data.source) if resume else e) from None
    if resume:
        RunFolder(out).check_data(data.data, "resume")
    return checkpoint, state, data


class _Recorder:
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
