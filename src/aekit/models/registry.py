"""A small registry: architectures register by name and are built by name.

    @register("conv", ConvAEConfig)
    class ConvAutoencoder(Autoencoder): ...

    model = create_model("conv", code_length=128)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from ..errors import ConfigError

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
            f"unknown model {name!r} (known: {', '.join(list_models())})"
        ) from None


def model_class(name: str) -> type:
    return _lookup(name)[0]


def config_class(name: str) -> type:
    return _lookup(name)[1]


def create_model(name_or_config: Any = "conv", **overrides: Any):
    """Build a model from a registered name (plus config overrides) or from a model config."""
    from ..config import build_model_config

    if isinstance(name_or_config, str):
        raw = {"name": name_or_config, **overrides}
        config = build_model_config(raw, where=f"model {name_or_config!r}")
    else:
        config = dataclasses.replace(name_or_config, **overrides) if overrides else name_or_config
    problem = getattr(type(config), "check", lambda c: None)(config)
    if problem:
        raise ConfigError(problem)
    cls = model_class(config.name)
    return cls(config)
