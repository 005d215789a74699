"""Where and in what precision training runs: the device, what the hardware runs natively, autocast.

``train.amp = "auto"`` (the default outside the reference configs) is bf16 only where the device runs
it natively (a CPU with AVX512-BF16 or AMX; a CUDA GPU with bf16 support) and float32 elsewhere: on a
CPU without native bf16, PyTorch emulates it and a bf16 run is several times *slower* than float32
(measured: 11x for the reference model on an AVX2-only CPU; benchmarks/README.md).
"""

from __future__ import annotations

import contextlib
import os
import platform
import warnings
from typing import Callable

import torch

from ..errors import ConfigError

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CPU_FLAGS = ("avx2", "avx512_f", "avx512_bf16", "amx_bf16", "amx_tile")  # the flags that matter for speed


def cpu_features() -> dict:
    """The CPU's model and the instruction sets that matter here (torch's cpuinfo; /proc/cpuinfo else)."""
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    flags = {f: bool(caps.get(f)) for f in CPU_FLAGS} if caps else _proc_flags()
    model = caps.get("cpu_name") or _proc_model() or platform.processor() or platform.machine()
    return {"model": model, **flags, "cores": caps.get("num_physical_cores") or os.cpu_count(),
            "logical_cores": caps.get("num_logical_cores") or os.cpu_count()}


def _proc_lines(prefix: str) -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return [line.split(":", 1)[1].strip() for line in f if line.startswith(prefix)]
    except OSError:
        return []


def _proc_flags() -> dict:
    found = set(" ".join(_proc_lines("flags")[:1]).split())
    names = {"avx2": "avx2", "avx512_f": "avx512f", "avx512_bf16": "avx512_bf16", "amx_bf16": "amx_bf16",
             "amx_tile": "amx_tile"}
    return {f: names[f] in found for f in CPU_FLAGS}


def _proc_model() -> str:
    return next(iter(_proc_lines("model name")), "")


def vector_isa(cpu: dict) -> str:
    """The widest vector instruction set of ``cpu`` (:func:`cpu_features`) that matters here, in words."""
    return "AVX-512" if cpu["avx512_f"] else "AVX2" if cpu["avx2"] else "no AVX2"


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` runs bf16 natively, and why (for the printed precision choice)."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        name = torch.cuda.get_device_name(device)
        ok = major >= 8 and torch.cuda.is_bf16_supported()
        return ok, f"the GPU, {name} with compute capability {major}.{minor}, {'runs' if ok else 'has no native'} bf16"
    if device.type == "cpu":
        cpu = cpu_features()
        native = [n for n, flag in (("AVX512-BF16", "avx512_bf16"), ("AMX-BF16", "amx_bf16")) if cpu[flag]]
        if native:
            return True, f"the CPU, {cpu['model']}, has {' and '.join(native)}"
        return False, f"the CPU, {cpu['model']} with {vector_isa(cpu)}, has no native bf16 (AVX512-BF16 or AMX)"
    return False, f"bf16 is not used on {device.type}"


def resolve_amp(amp: str, device: torch.device, float32_because: str | None = None) -> tuple[str, str]:
    """The precision ``train.amp`` means on ``device`` ("auto": bf16 on a CPU that runs it natively, else off), and why;
    ``float32_because``: the model's reason to stay in float32 under auto (a model class's ``float32_because``).

    On a GPU auto is float32 (cuDNN's convolutions use TF32 there): bf16 autocast trained the reference
    model at 0.73x a float32 loop's speed on an H200, float32 at 0.91x (benchmarks/README.md#gpu)."""
    if amp != "auto":
        return amp, "as configured"
    if float32_because:
        return "off", f"amp auto: float32 for this model: {float32_because}"
    if device.type == "cuda":
        return "off", "amp auto: float32 on a GPU (bf16 measured slower for these models on an H200; --amp bf16 to try it)"
    native, why = native_bf16(device)
    return ("bf16" if native else "off"), f"amp auto: {why}"


def amp_warning(amp: str, device: torch.device) -> str | None:
    """A warning for an explicit bf16 on a device that only emulates it, else None."""
    if amp == "bf16" and device.type == "cpu":
        native, why = native_bf16(device)
        if not native:
            return (f"warning: train.amp bf16: {why}, so bf16 runs emulated and several times slower than "
                    "float32; train.amp auto picks float32 here")
    return None


def machine(device: torch.device | str | None = None) -> dict:
    """What a measurement ran on: CPU model and flags, cores, torch threads, torch version, device."""
    info = {"cpu": cpu_features(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "platform": platform.platform()}
    device = torch.device(device) if device is not None else resolve_device("auto")
    info["device"] = str(device)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    info["native_bf16"] = native_bf16(device)[0]
    return info


def describe_machine(info: dict) -> str:
    """One line for a table: 'AMD EPYC (AVX2, no native bf16), 2 cores, 2 threads, torch 2.13.0, cpu'."""
    cpu = info["cpu"]
    isa, bf16 = vector_isa(cpu), "+BF16" if cpu["avx512_bf16"] or cpu["amx_bf16"] else ", no native bf16"
    where = info.get("gpu") or info["device"]
    return f"{cpu['model']} ({isa}{bf16}), {cpu['cores']} cores, {info['threads']} threads, torch {info['torch']}, {where}"


def callers_generator() -> contextlib.AbstractContextManager:
    """A block after which torch's global generator (the CPU's and the current CUDA device's) is as the caller left
    it, whatever the block seeds and draws (aekit.train and the estimator seed it for a model's initial weights)."""
    return torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else [])


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
    amp = resolve_amp(amp, device)[0]
    if amp not in AMP_DTYPES:
        raise ConfigError(f"train.amp {amp!r} is not one of {', '.join(map(repr, ['auto', *AMP_DTYPES]))}")
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
