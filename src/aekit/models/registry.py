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
    """Build a model from a registered name (plus config overrides) or from a model config."""
    if isinstance(name_or_config, str):
        config = build_model_config({"name": name_or_config, **overrides}, where=f"model {name_or_config!r}")
    else:
        config = dataclasses.replace(name_or_config, **overrides) if overrides else name_or_config
    for key, why in config.common_problems():
        raise ConfigError(f"{key} {why}")
    problem = config.check()
    if problem:
        raise ConfigError(problem)
    try:
        model = model_class(config.name)(config)
    except RuntimeError as e:  # e.g. a dense code layer of a million units: torch's allocator message
        if "allocate" not in str(e):
            raise
        raise ConfigError(f"model.code_length {config.code_length}: the {config.name} model's weights do not fit in "
                          "memory with these settings; lower it (or the layers' widths)", keys="model.code_length") from None
    if model.channels_last:  # every later .to() and load_state_dict keeps the layout
        model.to(memory_format=torch.channels_last)
    return model
