"""Corruptions for denoising: small pure functions ``(x, generator) -> corrupted x``.

A corruption is described by a SPEC string (``--noise``) or the ``[noise]`` table of a config:

    none                 no corruption
    gaussian:0.2         homoscedastic: x + N(0, 0.2^2) for every value, clipped to [0, 1] (the reference)
    gaussian:0.05-0.4    heteroscedastic: every value of every sample gets its own sigma, drawn
                         uniformly in [0.05, 0.4], then x + N(0, sigma^2), clipped
    gaussian-map:S.npy   a fixed per-pixel sigma map (H x W, or C x H x W), clipped
    mask:0.3             masking (dropout) noise: that fraction of pixels set to 0 (all channels)
    saltpepper:0.1       that fraction of pixels set to 0 or 1 (half each, all channels)

Noise is added at the data's native resolution, before resizing to the working size, as the
reference does (it adds noise at 64 x 64, then resizes both copies to 32 x 32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .errors import ConfigError

GRAMMAR = (
    "none | gaussian:SIGMA | gaussian:MIN-MAX | gaussian-map:PATH.npy | mask:FRACTION | saltpepper:FRACTION"
)

NoiseKind = Literal["none", "gaussian", "gaussian-map", "mask", "saltpepper"]


@dataclass
class NoiseConfig:
    kind: NoiseKind = "none"  # none | gaussian | gaussian-map | mask | saltpepper
    sigma: float = 0.0  # gaussian: the standard deviation (the lower end when sigma_max is set)
    sigma_max: float | None = None  # gaussian: upper end of a heteroscedastic sigma range
    fraction: float = 0.0  # mask / saltpepper: fraction of pixels hit
    map: str | None = None  # gaussian-map: path of a .npy per-pixel sigma map

    def spec(self) -> str:
        """The SPEC string of this corruption."""
        if self.kind == "gaussian":
            return f"gaussian:{_num(self.sigma)}" + (f"-{_num(self.sigma_max)}" if self.sigma_max is not None else "")
        if self.kind == "gaussian-map":
            return f"gaussian-map:{self.map}"
        if self.kind in ("mask", "saltpepper"):
            return f"{self.kind}:{_num(self.fraction)}"
        return "none"

    def check(self) -> str | None:
        """Why this corruption is impossible, or None."""
        if self.kind == "gaussian":
            if not (math.isfinite(self.sigma) and self.sigma >= 0):
                return f"noise sigma must be 0 or more, got {self.sigma}"
            if self.sigma_max is not None and not self.sigma <= self.sigma_max:
                return f"noise sigma range {self.sigma}-{self.sigma_max} must have MIN <= MAX"
        if self.kind in ("mask", "saltpepper") and not 0 <= self.fraction <= 1:
            return f"noise fraction must lie in [0, 1], got {self.fraction}"
        if self.kind == "gaussian-map" and not self.map:
            return "noise kind gaussian-map needs a map path"
        return None

    @property
    def active(self) -> bool:
        return self.kind != "none"

    def rms_sigma(self) -> float | None:
        """Root-mean-square sigma of Gaussian noise (for baselines that need a noise level)."""
        if self.kind == "gaussian":
            if self.sigma_max is None:
                return self.sigma
            a, b = self.sigma, self.sigma_max
            return math.sqrt((a * a + a * b + b * b) / 3)  # E[s^2] for s ~ U(a, b)
        if self.kind == "gaussian-map":
            return float(np.sqrt(np.mean(np.square(load_sigma_map(self.map)))))
        return None


def _num(v: float) -> str:
    return f"{v:g}"


def parse_noise(spec: str) -> NoiseConfig:
    """Parse a SPEC string; a bad one is a ConfigError that shows the grammar."""
    text = spec.strip()

    def bad(why: str) -> ConfigError:
        return ConfigError(f"--noise {spec!r}: {why} (grammar: {GRAMMAR})")

    if text in ("", "none"):
        return NoiseConfig()
    kind, sep, arg = text.partition(":")
    if not sep or not arg:
        raise bad("expected KIND:VALUE")
    try:
        if kind == "gaussian":
            if "-" in arg.lstrip("-"):
                lo, hi = arg.split("-", 1)
                cfg = NoiseConfig(kind="gaussian", sigma=float(lo), sigma_max=float(hi))
            else:
                cfg = NoiseConfig(kind="gaussian", sigma=float(arg))
        elif kind == "gaussian-map":
            cfg = NoiseConfig(kind="gaussian-map", map=arg)
        elif kind in ("mask", "saltpepper"):
            cfg = NoiseConfig(kind=kind, fraction=float(arg))
        else:
            raise bad(f"unknown noise kind {kind!r}")
    except ValueError:
        raise bad(f"{arg!r} is not a number") from None
    problem = cfg.check()
    if problem:
        raise bad(problem)
    return cfg


def load_sigma_map(path: str) -> np.ndarray:
    try:
        sigma = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ConfigError(f"noise map {path}: file not found") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"noise map {path}: not a readable .npy array ({e})") from None
    if sigma.ndim not in (2, 3) or not np.issubdtype(sigma.dtype, np.number):
        raise ConfigError(f"noise map {path}: expected a numeric H x W or C x H x W array, got shape {sigma.shape}")
    if not np.all(np.isfinite(sigma)) or sigma.min() < 0:
        raise ConfigError(f"noise map {path}: sigmas must be finite and 0 or more")
    return sigma.astype(np.float32)


# --- the corruptions: pure functions of (x, generator) ---------------------------------------

def gaussian(x: torch.Tensor, sigma: float | torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """x + N(0, sigma^2), clipped to [0, 1]; ``sigma`` may be a tensor broadcast against x."""
    noise = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
    return (x + noise * sigma).clamp_(0.0, 1.0)


def heteroscedastic(x: torch.Tensor, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    """Every value gets its own sigma ~ U(lo, hi), then Gaussian noise, clipped."""
    sigma = lo + (hi - lo) * torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype)
    return gaussian(x, sigma, g)


def mask(x: torch.Tensor, fraction: float, g: torch.Generator) -> torch.Tensor:
    """Masking noise: each pixel (all its channels) set to 0 with probability ``fraction``."""
    n, _, h, w = x.shape
    hit = torch.rand((n, 1, h, w), generator=g, device=x.device) < fraction
    return x.masked_fill(hit, 0.0)


def salt_and_pepper(x: torch.Tensor, fraction: float, g: torch.Generator) -> torch.Tensor:
    """Each pixel hit with probability ``fraction`` becomes 0 or 1 (equally likely), all channels."""
    n, _, h, w = x.shape
    u = torch.rand((n, 1, h, w), generator=g, device=x.device)
    salt = torch.rand((n, 1, h, w), generator=g, device=x.device) < 0.5
    hit = u < fraction
    return torch.where(hit, salt.to(x.dtype).expand_as(x), x)


def make_corruption(cfg: NoiseConfig):
    """A function ``(x, generator) -> corrupted x`` for ``cfg`` (None for no corruption)."""
    problem = cfg.check()
    if problem:
        raise ConfigError(problem)
    if cfg.kind == "none":
        return None
    if cfg.kind == "gaussian":
        if cfg.sigma_max is None:
            return lambda x, g: gaussian(x, cfg.sigma, g)
        return lambda x, g: heteroscedastic(x, cfg.sigma, cfg.sigma_max, g)
    if cfg.kind == "gaussian-map":
        sigma_map = torch.from_numpy(load_sigma_map(cfg.map))

        def with_map(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
            s = sigma_map.to(x.device, x.dtype)
            if tuple(s.shape[-2:]) != tuple(x.shape[-2:]) or (s.ndim == 3 and s.shape[0] != x.shape[1]):
                raise ConfigError(
                    f"noise map {cfg.map}: shape {tuple(s.shape)} does not match images of "
                    f"{x.shape[1]} x {x.shape[2]} x {x.shape[3]} (C x H x W, native resolution)"
                )
            return gaussian(x, s, g)

        return with_map
    if cfg.kind == "mask":
        return lambda x, g: mask(x, cfg.fraction, g)
    return lambda x, g: salt_and_pepper(x, cfg.fraction, g)
