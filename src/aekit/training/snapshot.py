"""What a checkpoint's state.pt holds of a training (:func:`snapshot`), and continuing from it (:func:`restore`):
weights, optimiser, schedule, random streams, history, selection and the weight average. ``trainer`` is the
loop's (:class:`aekit.training.loop._Trainer`)."""

from __future__ import annotations

import contextlib
import numbers
from typing import Any, Iterator

import torch

from ..errors import AekitError, ConfigError
from ..models.io import weights_problem
from ..typed import build
from .history import EpochStats
from .selection import weights_copy

# What torch (and plain Python) raise on a state of another form: a foreign optimiser, a value of another type
BROKEN = (ValueError, KeyError, TypeError, IndexError, AttributeError, RuntimeError, ConfigError)


class StateError(AekitError):
    """A part of a training state (a checkpoint's state.pt) that does not fit the training it would continue: damaged,
    or of another run. :func:`aekit.train` names the file and the checkpoints a resume could start from instead."""


def restore(trainer, state: dict) -> None:
    """Continue exactly where a snapshot was taken: weights, optimiser, schedule, random streams. A part that does not
    fit this training is a :class:`StateError` naming it, before any step (else torch fails later, or mid-epoch)."""
    trainer.model.load_state_dict(state.get("training_weights") or state["model"])
    for key, own in (("optimizer", trainer.opt), ("scheduler", trainer.sched), ("scaler", trainer.scaler)):
        if own is not None and (key != "scaler" or state.get("scaler")):  # checkpoints without one: a fresh scaler
            with _part(key):
                _fail(unlike(state[key], own.state_dict(), key))
                own.load_state_dict(state[key])
    with _part("optimizer"):
        _fail(moments_problem(trainer.opt))
    with _part("shuffle_rng"):
        trainer.shuffle.set_state(state["shuffle_rng"])
    if len(state["noise_rng"]) != trainer.dist.world:
        raise ConfigError(
            f"the checkpoint of epoch {state['epoch']} was written by {len(state['noise_rng'])} process(es); "
            f"resume it with as many (nproc), not {trainer.dist.world}", keys="nproc",
        )
    with _part("noise_rng"):
        trainer.noise.set_state(state["noise_rng"][trainer.dist.rank].to(trainer.noise.get_state().device))
    with _part("torch_rng"):
        torch.set_rng_state(state["torch_rng"])
    if trainer.device.type == "cuda" and state.get("cuda_rng"):  # dropout, a VAE's draws: the device's own stream
        with _part("cuda_rng"):
            torch.cuda.set_rng_state(state["cuda_rng"][trainer.dist.rank].cpu(), trainer.device)
    with _part("history"):
        trainer.history.extend(_epoch(h, f"history[{i}]") for i, h in enumerate(state["history"]))
    if trainer.average is not None and state.get("average"):
        with _part("average"):  # older checkpoints hold the weights in state.pt too
            weights = state["average"].get("average", state["model"])
            _fail(weights_problem(trainer.model, weights))
            trainer.average.restore({"steps": state["average"]["steps"], "average": weights})
    if trainer.selection is not None and state.get("selection"):
        with _part("selection"):
            trainer.selection.restore(state["selection"])
            if trainer.selection.best_state is not None:
                _fail(weights_problem(trainer.model, trainer.selection.best_state))
    trainer.pipeline.hflip = bool(state.get("hflip", trainer.pipeline.hflip))  # with train.hflip auto, fit() decided
    trainer.first_epoch = int(state["epoch"]) + 1


def unlike(saved: Any, own: Any, where: str) -> str | None:
    """How ``saved`` (a state dict read from a checkpoint) differs in form from ``own`` (this training's): a value of
    another type, a list of another length, a tensor of another shape; or None. Keys only one of them holds are let
    be (another torch version adds or drops some), and so are flags (a bool or None in ``own``)."""
    if isinstance(own, dict):
        if not isinstance(saved, dict):
            return f"{where} is a {type(saved).__name__}, not a table"
        return next((p for k in own if k in saved and (p := unlike(saved[k], own[k], f"{where}[{k!r}]"))), None)
    if isinstance(own, (list, tuple)):
        if not isinstance(saved, (list, tuple)):
            return f"{where} is a {type(saved).__name__}, not a list"
        if len(saved) != len(own):
            return f"{where} holds {len(saved)} values, this training's {len(own)}"
        return next((p for i, (s, o) in enumerate(zip(saved, own)) if (p := unlike(s, o, f"{where}[{i}]"))), None)
    if isinstance(own, torch.Tensor):
        if not isinstance(saved, torch.Tensor) or saved.shape != own.shape:
            return f"{where} {_form(saved)}, this training's shape {tuple(own.shape)}"
    elif isinstance(own, numbers.Real) and not isinstance(own, bool):
        if isinstance(saved, bool) or not isinstance(saved, numbers.Real):
            return f"{where} is a {type(saved).__name__}, not a number"
    elif isinstance(own, str) and not isinstance(saved, str):
        return f"{where} is a {type(saved).__name__}, not a string"
    return None


def moments_problem(opt: torch.optim.Optimizer) -> str | None:
    """A parameter's optimiser state (Adam's moments) that is not a tensor, or of another shape than the parameter
    (a foreign optimiser state with as many parameters loads, and fails at the first step)."""
    for i, p in enumerate(p for group in opt.param_groups for p in group["params"]):
        for name, value in opt.state.get(p, {}).items():
            if not isinstance(value, torch.Tensor) or (name != "step" and value.shape != p.shape):
                return f"optimizer['state'][{i}][{name!r}] {_form(value)}, its parameter's shape {tuple(p.shape)}"
    return None


def _form(value: Any) -> str:
    return f"has shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else f"is a {type(value).__name__}"


def _epoch(record: Any, where: str) -> EpochStats:
    try:
        stats = build(EpochStats, record, where)  # the types of its fields checked
    except TypeError as e:  # a field missing
        raise TypeError(f"{where}: {e}") from None
    if not isinstance(stats.heldout, dict) or not isinstance(stats.validation, dict):
        raise TypeError(f"{where}: heldout and validation must be tables")
    return stats


def _fail(problem: str | None) -> None:
    if problem:
        raise ValueError(problem)


@contextlib.contextmanager
def _part(key: str) -> Iterator[None]:
    """Restoring the part ``key`` of a training state: what it raises is a :class:`StateError` naming the part."""
    try:
        yield
    except BROKEN as e:
        why = (f"no {e.args[0]!r}" if isinstance(e, KeyError) and e.args else str(e).strip().splitlines()[0][:200]
               if str(e).strip() else type(e).__name__)
        raise StateError(f"{key!r} does not fit this training ({why})") from None


def snapshot(trainer) -> dict:
    """Everything needed to continue exactly (tensors and plain values: loads with weights_only)."""
    raw = trainer.final_state or weights_copy(trainer.model)  # the weights training continues from
    return {  # "model": the weights as validated (the average, with train.ema): a checkpoint loads as them
        "epoch": trainer.history[-1].epoch,
        "model": weights_copy(trainer.average.average) if trainer.average is not None else raw,
        "training_weights": raw if trainer.average is not None else None,
        "optimizer": trainer.opt.state_dict(), "scheduler": trainer.sched.state_dict(),
        "shuffle_rng": trainer.shuffle.get_state(), "torch_rng": torch.get_rng_state(),
        "noise_rng": trainer.dist.gather(trainer.noise.get_state(), trainer.device),
        "cuda_rng": (trainer.dist.gather(torch.cuda.get_rng_state(trainer.device), trainer.device)
                     if trainer.device.type == "cuda" else None),
        "history": [vars(h) for h in trainer.history],
        "selection": trainer.selection.state() if trainer.selection is not None else None,
        # the average's weights are "model" (model.safetensors): state.pt keeps only its step count
        "average": {"steps": trainer.average.steps} if trainer.average is not None else None,
        "hflip": trainer.pipeline.hflip,
        **({"scaler": trainer.scaler.state_dict()} if trainer.scaler is not None else {}),
    }
