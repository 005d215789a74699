"""Where and in what precision training runs: the device, CPU threads, and autocast."""

from __future__ import annotations

import contextlib
import warnings
from typing import Callable

import torch

from ..errors import ConfigError

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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
        raise ConfigError(f"train.device {name!r}: not a device (use auto, cpu, cuda, cuda:N or mps)",
                          keys="train.device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device {name}: CUDA is not available on this machine", keys="train.device")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device {name}: MPS is not available on this machine", keys="train.device")
    return dev


def autocast_for(amp: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of the autocast context of ``train.amp`` on ``device`` (a no-op for 'off').

    Refuses, as a ConfigError, a precision that this torch cannot autocast on this device (rather than
    training in fp32 while claiming mixed precision)."""
    if amp not in AMP_DTYPES:
        raise ConfigError(f"train.amp {amp!r} is not one of {', '.join(map(repr, AMP_DTYPES))}")
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        return contextlib.nullcontext
    if amp == "fp16" and not hasattr(torch.amp, "GradScaler"):
        raise ConfigError(f"train.amp fp16 needs torch >= 2.3 (torch.amp.GradScaler); this is {torch.__version__}")
    with warnings.catch_warnings(record=True) as caught:  # torch warns, and disables itself, when unsupported
        warnings.simplefilter("always")
        try:
            probe = torch.autocast(device_type=device.type, dtype=dtype)
        except RuntimeError as e:  # e.g. bf16 on a GPU older than Ampere
            raise ConfigError(f"train.amp {amp}: {str(e).strip().splitlines()[0]}") from None
    if not getattr(probe, "_enabled", True) or any("isabl" in str(w.message) for w in caught):
        raise ConfigError(
            f"train.amp {amp}: this torch ({torch.__version__}) cannot autocast to {amp} on {device.type}"
            + (" (use bf16)" if amp == "fp16" else "")
        )
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)
