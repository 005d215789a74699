"""A trained model's codes, in batches: encode images, decode codes, walk between two images.

The tools of :mod:`aekit.latent` (files in and out) and the run's pictures stand on these.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import map_batches
from .errors import AekitError
from .training.preflight import user_images


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def cannot_decode(name: str) -> str:
    """Why a model whose class has ``decodes_codes = False`` has no decoding of codes."""
    return f"the {name} model cannot decode a code on its own (its decoder also reads the encoder's skip connections)"


def _need_decoder(model: torch.nn.Module, what: str) -> None:
    if not model.decodes_codes:
        raise AekitError(f"{what}: {cannot_decode(model.config.name)}; use a model such as conv or vae")


def encode(model: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    """Codes (N, code length) of (N, C, H, W) images in [0, 1] (a VAE: the mean mu); NumPy arrays too. What
    the model cannot take (shape, channels, size, range) is a one-line error."""
    return map_batches(model.encode, user_images(model, images, names=("images",)), _device(model)).numpy()


def decode(model: torch.nn.Module, codes: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) decoded from codes (N, code length)."""
    _need_decoder(model, "decode")
    z = torch.as_tensor(np.asarray(codes, dtype=np.float32))
    h, w = model.config.input_size
    if z.ndim != 2 or z.shape[1] != model.code_size(h, w):
        raise AekitError(f"codes of shape {tuple(z.shape)} do not fit the model: expected (N, {model.code_size(h, w)})")
    return map_batches(model.decode, z, _device(model))


def interpolate_images(model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """(steps + 2, C, H, W): image ``a``, the decodings along the line between the codes of ``a`` and
    ``b`` (both (C, H, W) at the working size), image ``b``."""
    x = torch.stack([a, b])
    za, zb = torch.from_numpy(encode(model, x))
    t = torch.linspace(0, 1, steps)[:, None]
    return torch.cat([x[:1], decode(model, (1 - t) * za + t * zb), x[1:]])
