"""Bringing images to the working size and channel count, on (N, C, H, W) tensors in [0, 1].

``resize`` scales (``legacy-bicubic`` is TensorFlow 1's kernel, for the reference); ``fit_images``
resizes, crops, pads or cuts a native-resolution window to a size; ``convert_channels`` turns RGB
into gray (ITU-R 601 luma) or gray into RGB.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError

ResizeMethod = Literal["legacy-bicubic", "bicubic", "bilinear", "area", "nearest"]
FitMethod = Literal["resize", "crop", "pad", "window", "tiles"]
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # RGB -> gray weights (ITU-R 601, as Pillow's "L")


def parse_size(text: str) -> tuple[int, int]:
    """ "64x48" -> (64, 48); "64" -> (64, 64)."""
    h, x, w = text.lower().partition("x")
    try:
        return (int(h), int(w if x else h))
    except ValueError:
        raise ValueError(f"{text!r} is not a size HxW (e.g. 64x64, or 64)") from None


MAX_SIDE = 65536  # pixels a side of a working size: far above any model's (a bound against damaged files)


def size_problem(size: tuple[int, int]) -> str | None:
    """Why ``size`` (height, width) cannot be a working size ("data.size " + it says so), or None."""
    if min(size) < 1:
        return f"must be positive, got {size[0]}x{size[1]}"
    return None if max(size) <= MAX_SIDE else f"must be at most {MAX_SIDE} a side, got {size[0]}x{size[1]}"


def convert_channels(images: torch.Tensor, channels: str | int) -> torch.Tensor:
    """(N, C, H, W) with C = 1 or 3 -> ``channels`` ("auto" keeps C): luma for RGB -> gray, copies for gray -> RGB."""
    if channels == "auto" or images.shape[1] == channels:
        return images
    if channels == 3:
        return images.repeat(1, 3, 1, 1)
    return torch.einsum("nchw,c->nhw", images, torch.from_numpy(LUMA)).unsqueeze(1)


def resize(images: torch.Tensor | np.ndarray, size: tuple[int, int],
           method: str = "bicubic") -> torch.Tensor | np.ndarray:
    """Resize (N, C, H, W) images to ``size`` = (height, width); values are clipped to [0, 1]. A NumPy
    array comes back as a float32 NumPy array.

    ``legacy-bicubic`` is TensorFlow 1's ``resize_images(..., BICUBIC)`` (align_corners=False,
    half_pixel_centers=False, Keys kernel a=-0.5, edge-clamped); for an exact 2x downscale it
    equals ``x[..., ::2, ::2]``. ``bicubic``/``bilinear`` are PyTorch's half-pixel resizes
    (antialiased when shrinking), ``area`` averages, ``nearest`` picks.
    """
    if isinstance(images, np.ndarray):
        return resize(torch.from_numpy(np.array(images, dtype=np.float32)), size, method).numpy()
    if images.ndim != 4:
        raise DataError(f"resize takes (N, C, H, W) images, got shape {tuple(images.shape)}")
    h, w = size
    if tuple(images.shape[-2:]) == (h, w):
        return images
    if method == "legacy-bicubic":
        my = _legacy_bicubic_matrix(images.shape[-2], h).to(images)
        mx = _legacy_bicubic_matrix(images.shape[-1], w).to(images)
        out = torch.einsum("yh,nchw,xw->ncyx", my, images, mx)
    elif method in ("bicubic", "bilinear"):
        shrink = h < images.shape[-2] or w < images.shape[-1]
        out = F.interpolate(images, size=(h, w), mode=method, align_corners=False, antialias=shrink)
    elif method == "area":
        out = F.interpolate(images, size=(h, w), mode="area")
    elif method == "nearest":
        out = F.interpolate(images, size=(h, w), mode="nearest-exact")
    else:
        raise DataError(f"unknown resize method {method!r}")
    return out.clamp_(0.0, 1.0)


def fit_images(images, size: tuple[int, int], fit: str = "resize", method: str = "bicubic", *, name: str = "images"):
    """Bring (N, C, H, W) images to ``size`` = (height, width).

    resize: scale each axis (the aspect ratio may change);
    crop:   scale, keeping the aspect ratio, until the image covers the size, then cut the centre;
            it never enlarges, so an image smaller than the size is an error naming ``name``;
    pad:    scale, keeping the aspect ratio, until the image fits, then pad with black around it;
    window: cut the centre window of the size at the native resolution, no resampling (a denoiser's
            noise and detail stay the image's own); an image smaller than the size is an error;
    tiles:  as window here, where one image must give one (a file given to a fixed-size model); a
            source loaded with ``fit = "tiles"`` gives every window instead (:mod:`aekit.data.tiles`).
    A streaming dataset (not a tensor) is fitted as it reads, and is returned as it is.
    """
    h, w = size
    height, width = images.shape[-2:]
    if not isinstance(images, torch.Tensor) or (height, width) == (h, w):
        return images
    if fit == "resize":
        return resize(images, size, method)
    if fit in ("window", "tiles"):
        check_crop(name, (height, width), size, fit)
        top, left = (height - h) // 2, (width - w) // 2
        return images[..., top : top + h, left : left + w].contiguous()
    if fit == "crop":
        check_crop(name, (height, width), size, fit)
        scale = max(h / height, w / width)
        sh, sw = max(h, round(height * scale)), max(w, round(width * scale))
        top, left = (sh - h) // 2, (sw - w) // 2
        return resize(images, (sh, sw), method)[..., top : top + h, left : left + w]
    if fit == "pad":
        scale = min(h / height, w / width)
        sh, sw = min(h, max(1, round(height * scale))), min(w, max(1, round(width * scale)))
        top, left = (h - sh) // 2, (w - sw) // 2
        return F.pad(resize(images, (sh, sw), method), (left, w - sw - left, top, h - sh - top))
    raise DataError(f"unknown fit {fit!r} (known: resize, crop, pad, window, tiles)")


def check_crop(name: str, image_size: tuple[int, int], size: tuple[int, int], fit: str = "crop") -> None:
    """``fit = "crop"`` and ``"window"`` never enlarge: an image smaller than the working size is an error
    naming it."""
    (height, width), (h, w) = image_size, size
    if height < h or width < w:
        raise DataError(
            f"{name}: {height}x{width} is smaller than the working size {h}x{w}, which data.fit {fit} "
            "cannot fill without enlarging (use data.fit pad or resize, or a smaller data.size)",
            keys=("data.fit", "data.size"),
        )


@lru_cache(maxsize=32)
def _legacy_bicubic_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) weights of TF1's legacy bicubic resize along one axis."""
    a = -0.5
    scale = n_in / n_out
    m = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        src = i * scale  # no half-pixel offset in TF1's legacy mode
        base = int(np.floor(src))
        t = src - base
        for k in range(-1, 3):
            d = abs(k - t)
            if d <= 1:
                wgt = ((a + 2) * d - (a + 3)) * d * d + 1
            elif d < 2:
                wgt = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
            else:
                wgt = 0.0
            m[i, min(max(base + k, 0), n_in - 1)] += wgt
    return torch.from_numpy(m.astype(np.float32))
