"""Architectures: one file each, registered by name."""

from .base import AEOutput, Autoencoder
from .registry import config_class, create_model, list_models, model_class, register

# Importing an architecture's module registers it.
from . import conv, fcn, hybrid, vae  # noqa: E402,F401

__all__ = [
    "AEOutput",
    "Autoencoder",
    "config_class",
    "create_model",
    "list_models",
    "model_class",
    "register",
]
