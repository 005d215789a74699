"""A small registry: architectures register by name with their config dataclass, and are built by name.

    @register("conv", ConvAEConfig)
    class ConvAutoencoder(Autoencoder): ...

    model = create_model("conv", code_length=128)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

from ..errors import ConfigError, did_you_mean
from ..memory import allocation_as, gib, too_much
from ..typed import build
from .base import ModelConfig

_MODELS: dict[str, tuple[type, type]] = {}


def register(name: str, config_cls: type) -> Callable[[type], type]:
    """Class decorator adding an architecture and its config dataclass to the registry."""

    def deco(cls: type) -> type:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = (cls, config_cls)
        cls.registered_name = name
        return cls

    return deco


def list_models() -> list[str]:
    """Names of the registered architectures, sorted."""
    return sorted(_MODELS)


def _lookup(name: str) -> tuple[type, type]:
    try:
        return _MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}{did_you_mean(name, _MODELS)} (known: {', '.join(list_models())})"
        ) from None


def model_class(name: str) -> type:
    return _lookup(name)[0]


def config_class(name: str) -> type:
    return _lookup(name)[1]


def build_model_config(raw: dict[str, Any], where: str = "[model]") -> ModelConfig:
    """The config dataclass of the architecture named by ``raw['name']``, built from ``raw``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table, got {type(raw).__name__}")
    name = raw.get("name", ModelConfig.name)
    try:
        config_cls = config_class(name)
    except ConfigError as e:
        raise ConfigError(f"{where}.name: {e}") from None
    return build(config_cls, config_cls.derived(raw), where)


def create_model(name_or_config: Any = "conv", **overrides: Any):
    """Build a model from a registered name (plus config overrides) or from a model config. Its weights are counted
    first (a build on the meta device, which allocates nothing): more than memory holds is a ConfigError naming the
    setting that makes them large, before any allocation."""
    shell = meta_model(name_or_config, **overrides)
    config = shell.config
    need = check_room(shell)
    with allocation_as(lambda: str(_too_large(config, f"{gib(need)}")), ConfigError, keys=_large_key(config)[0]):
        model = model_class(config.name)(config)
    if model.channels_last:  # every later .to() and load_state_dict keeps the layout
        model.to(memory_format=torch.channels_last)
    return model


def check_room(shell: torch.nn.Module) -> int:
    """The bytes of the weights of ``shell`` (a model built on the meta device: :func:`meta_model`), once checked
    against the memory available: more is a ConfigError naming the setting of its config that makes them large."""
    need = sum(t.numel() * t.element_size() for t in shell.state_dict().values())
    if more := too_much(need):
        raise _too_large(shell.config, f"{gib(need)}{more}")
    return need


def meta_model(name_or_config: Any = "conv", **overrides: Any):
    """The model :func:`create_model` builds, checked, on the meta device: its structure, parameter names and shapes,
    and its config, with no memory for its weights (the config checks bound its layer counts, so this is quick)."""
    if isinstance(name_or_config, str):
        config = build_model_config({"name": name_or_config, **overrides}, where=f"model {name_or_config!r}")
    else:
        config = dataclasses.replace(name_or_config, **overrides) if overrides else name_or_config
    for key, why in config.common_problems():
        raise ConfigError(f"{key} {why}")
    problem = config.check()
    if problem:
        raise ConfigError(problem)
    with allocation_as(lambda: str(_too_large(config, "")), ConfigError, keys=_large_key(config)[0]):
        with torch.device("meta"):
            return model_class(config.name)(config)


def _too_large(config: ModelConfig, need: str) -> ConfigError:
    """The error of a model whose weights do not fit in memory, naming the setting furthest above its default."""
    key, value = _large_key(config)
    return ConfigError(f"{key} {value}: the {config.name} model's weights do not fit in memory with these settings"
                       f"{f' ({need})' if need else ''}; lower it (or the layers' widths)", keys=key)


def _large_key(config: ModelConfig) -> tuple[str, Any]:
    """The [model] key (and its value) furthest above its architecture's default: what makes the weights large
    (model.code_length when none is above it). Not the channels of the images, nor the input size of a model that
    runs at any size, whose weights do not depend on it."""
    default, best = type(config)(), (1.0, "code_length")
    sizeless = {"in_channels"} | ({"input_size"} if getattr(model_class(config.name), "any_size", False) else set())
    for f in dataclasses.fields(config):
        if f.name in sizeless:
            continue
        ours, theirs = getattr(config, f.name), getattr(default, f.name)
        values = [ours] if isinstance(ours, int) else list(ours) if isinstance(ours, tuple) else []
        if isinstance(ours, bool) or not values or not all(isinstance(v, int) for v in values):
            continue
        was = [theirs] if isinstance(theirs, int) else list(theirs or ()) or [1]
        ratio = max(max(values), len(values)) / max(max(was), len(was), 1)
        if ratio > best[0]:
            best = (ratio, f.name)
    value = getattr(config, best[1])
    return f"model.{best[1]}", list(value) if isinstance(value, tuple) else value
