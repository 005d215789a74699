"""A training run end to end: data, model, the loop, checkpoints, and the run folder (:mod:`aekit.run_folder`)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import torch

from .baselines import rivals
from .config import Config, replace, working_size
from .config_file import load_config
from .evaluation import comparison, evaluate_run
from .errors import AekitError, ConfigError
from .data import absolute_source
from .data.workers import leave_if_reimported
from .files import write_json
from .fine_tune import load_init, notes, with_init
from .models import create_model, model_class, save
from .pipeline import Pipeline, RunData, prepare_data
from .report.page import write_report
from .report.run_pictures import write_run_pictures
from .report.tensorboard import TensorBoardLog
from .resume import check_checkpoint, check_resume, clear_for_resume, schedule_note, unfit_state
from .run_folder import RunFolder
from .run_record import Recorder, final_metrics
from .training import Distributed, EpochStats, fit, preflight
from .training.checkpoints import check_weights, read_checkpoint
from .training.devices import callers_generator, resolve_amp
from .training.snapshot import StateError
from .training.agreement import check_same_config, check_same_inputs, lost_peer, on_every_process
from .typed import flatten


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
    when stderr is a terminal). While it trains, the run folder is locked: another training of it, or an
    evaluation, is refused (:meth:`RunFolder.lock`). torch's global generator and thread count are the caller's again
    afterwards.
    """
    leave_if_reimported()  # a worker process importing a script that trains at its top level: before the run's lock
    threads = torch.get_num_threads()
    try:  # the caller's global generator and thread count are left as they were (train.seed, train.threads)
        with contextlib.ExitStack() as hold, callers_generator():  # hold: the run folder's lock
            return _train(cfg, out, overwrite=overwrite, resume=resume, progress=progress, log=log, hold=hold)
    finally:
        torch.set_num_threads(threads)


def _train(cfg, out, *, overwrite: bool, resume: bool, progress, log, hold: contextlib.ExitStack) -> RunResult:
    t_start = time.perf_counter()
    cfg = load_config(cfg) if isinstance(cfg, (str, Path)) else Config.from_dict(cfg) if isinstance(cfg, dict) else cfg
    if not isinstance(cfg, Config):
        raise ConfigError(f"cfg: expected an aekit.Config, a dict of its tables or a TOML file, got {type(cfg).__name__}")
    started = ""  # train.init_from: the trained model this run starts from, in words (a resume reads its own checkpoint)
    if cfg.train.init_from and not resume:
        cfg, started = with_init(cfg)
    dist = Distributed.current()
    main_process = dist.rank == 0
    if dist.world > 1:
        check_same_config({**flatten(cfg.to_dict()), "resume": resume})
    if out is None and not resume:
        out = default_out(cfg)  # a bad name is refused before any work
    checkpoint, state, data = on_every_process(lambda: _inputs(cfg, out, resume, hold))  # a failure on one stops every one
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
        for line in ([started, *notes(cfg, data)] if started else []):
            (log or print)(line)
        (log or print)(f"Precision: {'float32' if amp == 'off' else amp} ({why})")
        if resume and (note := schedule_note(RunFolder(out), cfg)):
            (log or print)(note)
    torch.manual_seed(cfg.seed)  # fixes the initialisation
    model = create_model(cfg.model)
    if state is not None:  # the checkpoint's weights are this model's (a damaged or foreign file: named)
        check_weights(model, checkpoint, state)
    elif cfg.train.init_from:
        load_init(model, cfg.train.init_from)
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
    recorder = Recorder(cfg, folder, model, preprocess, main_process, tensorboard, resumed_at=state and state["epoch"])
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
    except StateError as e:  # a part of the checkpoint's state.pt that does not fit (resume only): name the file
        raise unfit_state(folder, checkpoint, e) from None
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
    stopped = None  # Ctrl-C (or SIGTERM) in the comparison: the run is completed without it, then stops
    if cfg.train.compare and len(test_x):  # what a user would pick instead, on the same held-out images
        try:
            report = evaluate_run(folder, baselines=rivals(pipeline.corrupt is not None), limit=COMPARE_IMAGES,
                                  device=str(device), progress=progress, log=log,
                                  slow_hint="in the end-of-run comparison; train.compare = false skips it",
                                  prepared=data)
            metrics["comparison"] = comparison(report)
            if metrics["comparison"] and len(test_x) > COMPARE_IMAGES:  # say that it is a sample of the held-out images
                metrics["comparison"]["heldout_images"] = len(test_x)
        except Exception as e:  # an extra after the training: its failure must not cost the run its metrics and report
            metrics["comparison_error"] = f"{type(e).__name__}: {e}"
            (log or print)(f"warning: the end-of-run comparison failed ({metrics['comparison_error']}); the model, "
                           f"metrics and report are written, and `aekit evaluate {folder.path} --baselines` tries it again")
        except KeyboardInterrupt as e:
            stopped, metrics["comparison_error"] = e, "interrupted"
            (log or print)(f"Interrupted in the end-of-run comparison: the run is completed without it "
                           f"(`aekit evaluate {folder.path} --baselines` runs it)")
    write_run_pictures(folder, model, data, pipeline, history, title=cfg.name, seed=cfg.seed)
    write_report(folder, metrics=metrics)  # before metrics.json, which marks the run complete
    write_json(folder / folder.METRICS, metrics)  # last: marks the run complete
    folder.drop_replaced()  # the run overwrite set aside, if any
    if stopped is not None:
        raise stopped
    return RunResult(out=folder.path, model=model, history=history, metrics=metrics)


def _inputs(cfg: Config, out, resume: bool, hold: contextlib.ExitStack) -> tuple[Path | None, dict | None, RunData]:
    """The checkpoint a resume continues from, its folder and state (else None), and the prepared data, checked
    against the run's; the first process locks the run folder first (held by ``hold``)."""
    checkpoint = state = None
    if resume and out is None:
        raise AekitError("resume needs the run folder to continue", keys="resume")
    if Distributed.current().rank == 0:
        hold.enter_context(RunFolder(out).lock())
    if resume:
        check_resume(RunFolder(out), cfg)
        checkpoint, state = read_checkpoint(Path(out))
        check_checkpoint(RunFolder(out), cfg, checkpoint)
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
        if Distributed.current().rank == 0:
            clear_for_resume(RunFolder(out))
    return checkpoint, state, data
