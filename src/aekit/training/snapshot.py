"""What a checkpoint's state.pt holds of a training (:func:`snapshot`), and continuing from it (:func:`restore`):
weights, optimiser, schedule, random streams, history, selection and the weight average. ``trainer`` is the
loop's (:class:`aekit.training.loop._Trainer`)."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .history import EpochStats
from .selection import weights_copy


def restore(trainer, state: dict) -> None:
    """Continue exactly where a snapshot was taken: weights, optimiser, schedule, random streams."""
    trainer.model.load_state_dict(state.get("training_weights") or state["model"])
    trainer.opt.load_state_dict(state["optimizer"])
    trainer.sched.load_state_dict(state["scheduler"])
    if trainer.scaler is not None and state.get("scaler"):  # checkpoints without one start a fresh scaler
        trainer.scaler.load_state_dict(state["scaler"])
    trainer.shuffle.set_state(state["shuffle_rng"])
    if len(state["noise_rng"]) != trainer.dist.world:
        raise ConfigError(
            f"the checkpoint of epoch {state['epoch']} was written by {len(state['noise_rng'])} process(es); "
            f"resume it with as many (nproc), not {trainer.dist.world}", keys="nproc",
        )
    trainer.noise.set_state(state["noise_rng"][trainer.dist.rank].to(trainer.noise.get_state().device))
    torch.set_rng_state(state["torch_rng"])
    if trainer.device.type == "cuda" and state.get("cuda_rng"):  # dropout, a VAE's draws: the device's own stream
        torch.cuda.set_rng_state(state["cuda_rng"][trainer.dist.rank].cpu(), trainer.device)
    trainer.history.extend(EpochStats(**h) for h in state["history"])
    if trainer.average is not None and state.get("average"):
        trainer.average.restore(state["average"])
    if trainer.selection is not None and state.get("selection"):
        trainer.selection.restore(state["selection"])
    trainer.pipeline.hflip = bool(state.get("hflip", trainer.pipeline.hflip))  # with train.hflip auto, fit() decided
    trainer.first_epoch = int(state["epoch"]) + 1


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
        "average": trainer.average.state() if trainer.average is not None else None,
        "hflip": trainer.pipeline.hflip,
        **({"scaler": trainer.scaler.state_dict()} if trainer.scaler is not None else {}),
    }
