"""Architectures, one file each, registered by name; the model contract, losses and saving.

    base      ModelConfig (the fields every architecture has), AEOutput, Autoencoder (the contract)
    losses    the reconstruction losses: name -> per-sample function, sum or mean, unit
    registry  register / create_model / build_model_config
    layers    TensorFlow-style 'same' convolutions, fast transposed convolutions, TF's init
    conv      the reference deep convolutional autoencoder
    fcn       a fully convolutional U-Net-style autoencoder (concatenated skips)
    unet      a residual U-Net denoiser (DRUNet-style: additive skips, predicts the noise)
    hybrid    a PCA-started linear code with nonlinear corrections (compression)
    vae       the convolutional variational autoencoder
    io        save / load: model.json + model.safetensors
"""

from .base import AEOutput, Autoencoder, ModelConfig
from .registry import build_model_config, config_class, create_model, list_models, model_class, register

# Importing an architecture's module registers it.
from . import conv, fcn, hybrid, unet, vae  # noqa: E402,F401
from .io import load, save  # noqa: E402

__all__ = [
    "AEOutput",
    "Autoencoder",
    "ModelConfig",
    "build_model_config",
    "config_class",
    "create_model",
    "list_models",
    "load",
    "model_class",
    "register",
    "save",
]
