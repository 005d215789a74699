"""Corruptions for denoising, as one table: kind -> grammar, description, parse, spec, check, make.

A corruption is described by a SPEC string (``--noise``) or the ``[noise]`` table of a config:

    none                 no corruption
    gaussian:0.2         homoscedastic: x + N(0, 0.2^2) for every value, clipped to [0, 1] (the reference)
    gaussian:0.05-0.4    heteroscedastic: every value of every sample gets its own sigma, drawn
                         uniformly in [0.05, 0.4], then x + N(0, sigma^2), clipped
    gaussian-image:0-0.4 blind: every image gets one sigma, uniform in [0, 0.4], for all its values
    gaussian-map:S.npy   a fixed per-pixel sigma map (H x W, or C x H x W), clipped
    mask:0.3             masking (dropout) noise: that fraction of pixels set to 0 (all channels)
    saltpepper:0.1       that fraction of pixels set to 0 or 1 (half each, all channels)

A corruption is a pure function ``(x, generator) -> corrupted x`` of a (B, C, H, W) batch. It is
added to the images at the working size (``where = "working"``, the default: sigma is the noise of
the images the model denoises, as denoising benchmarks define it), or at the data's native size
before both copies are resized (``where = "native"``, the book's order, kept by the reference
configs); the input pipeline applies it (:mod:`aekit.pipeline`). A new kind is one
:class:`NoiseKind` in :data:`KINDS`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch

from .data.arrays import load_npy
from .errors import ConfigError, did_you_mean
from .files import user_path
from .typed import option

Corruption = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


# --- the corruptions: pure functions of (x, generator) ---------------------------------------

def gaussian(x: torch.Tensor, sigma: float | torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """x + N(0, sigma^2), clipped to [0, 1]; ``sigma`` may be a tensor broadcast against x."""
    noise = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
    return (x + noise * sigma).clamp_(0.0, 1.0)


def heteroscedastic(x: torch.Tensor, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    """Every value gets its own sigma ~ U(lo, hi), then Gaussian noise, clipped."""
    sigma = lo + (hi - lo) * torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype)
    return gaussian(x, sigma, g)


def per_image(x: torch.Tensor, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    """Every image gets one sigma ~ U(lo, hi) for all its values (blind denoising), then Gaussian noise, clipped."""
    sigma = lo + (hi - lo) * torch.rand((len(x), 1, 1, 1), generator=g, device=x.device, dtype=x.dtype)
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


def load_sigma_map(path: str) -> np.ndarray:
    try:
        sigma = load_npy(user_path(path))
    except FileNotFoundError:
        raise ConfigError(f"noise map {path}: file not found") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"noise map {path}: not a readable .npy array ({e})") from None
    if sigma.ndim not in (2, 3) or not np.issubdtype(sigma.dtype, np.number):
        raise ConfigError(f"noise map {path}: expected a numeric H x W or C x H x W array, got shape {sigma.shape}")
    if not np.all(np.isfinite(sigma)) or sigma.min() < 0 or sigma.max() > 1:
        raise ConfigError(f"noise map {path}: sigmas must be finite, 0 or more and at most 1 (in units of the images' "
                          "range [0, 1]: 25 of 255 levels is 0.098)")
    return sigma.astype(np.float32)


def _with_map(cfg: "NoiseConfig") -> Corruption:
    sigma_map = torch.from_numpy(load_sigma_map(cfg.map))

    def corrupt(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        s = sigma_map.to(x.device, x.dtype)
        if tuple(s.shape[-2:]) != tuple(x.shape[-2:]) or (s.ndim == 3 and s.shape[0] != x.shape[1]):
            raise ConfigError(
                f"noise map {cfg.map}: shape {tuple(s.shape)} does not match images of "
                f"{x.shape[1]} x {x.shape[2]} x {x.shape[3]} (C x H x W, where the noise is added)"
            )
        return gaussian(x, s, g)

    return corrupt


# --- the table --------------------------------------------------------------------------------

def _num(v: float) -> str:
    return f"{v:g}"


def _parse_range(kind: str):
    """The parser of "SIGMA" or "MIN-MAX" (numbers as Python writes them: -0.1, 5e-05)."""
    def parse(arg: str) -> "NoiseConfig":
        cut = next((i for i, ch in enumerate(arg) if ch == "-" and i and arg[i - 1] not in "eE"), None)
        if cut is None:
            return NoiseConfig(kind=kind, sigma=float(arg))
        return NoiseConfig(kind=kind, sigma=float(arg[:cut]), sigma_max=float(arg[cut + 1:]))
    return parse


def _check_range(c: "NoiseConfig") -> str | None:
    return _check_gaussian(c) or (None if c.sigma_max is not None else f"noise kind {c.kind} needs a range MIN-MAX")


def _check_gaussian(c: "NoiseConfig") -> str | None:
    if not (math.isfinite(c.sigma) and c.sigma >= 0):
        return f"noise sigma must be 0 or more, got {c.sigma}"
    if c.sigma_max is not None and not c.sigma <= c.sigma_max:
        return f"noise sigma range {c.sigma}-{c.sigma_max} must have MIN <= MAX"
    if max(c.sigma, c.sigma_max or 0) == 0:
        example = f"{c.kind}:0.2" if c.kind == "gaussian" else f"{c.kind}:0-0.4"
        return f"{c.kind} noise of sigma 0 adds nothing: give a sigma above 0 (e.g. {example}), or none"
    if (top := max(c.sigma, c.sigma_max or 0)) > 1:  # sigma in grey levels of 255, as BM3D's papers write it
        return (f"noise sigma {_num(top)} is above 1: sigma is in units of the images' range [0, 1], where a std "
                f"above 1 leaves only noise; {_num(top)} of 255 levels is {_num(round(top / 255, 4))}")
    return None


def _check_fraction(c: "NoiseConfig") -> str | None:
    if c.fraction == 0:
        return f"{c.kind} noise of fraction 0 adds nothing: give a fraction above 0 (e.g. {c.kind}:0.2), or none"
    return None if 0 <= c.fraction <= 1 else f"noise fraction must lie in [0, 1], got {c.fraction}"


@dataclass(frozen=True)
class NoiseKind:
    grammar: str  # the SPEC forms, e.g. "gaussian:SIGMA | gaussian:MIN-MAX"
    describe: str  # one line for the docs and --help
    parse: Callable[[str], "NoiseConfig"]  # the text after "KIND:" -> the config
    spec: Callable[["NoiseConfig"], str]  # the config -> its SPEC string
    make: Callable[["NoiseConfig"], Corruption | None]  # the config -> the corruption (None: none)
    check: Callable[["NoiseConfig"], str | None] = lambda c: None  # why the config is impossible, or None


KINDS: dict[str, NoiseKind] = {
    "none": NoiseKind("none", "no corruption", lambda arg: NoiseConfig(), lambda c: "none", lambda c: None),
    "gaussian": NoiseKind(
        "gaussian:SIGMA | gaussian:MIN-MAX",
        "x + N(0, sigma^2), clipped to [0, 1]; MIN-MAX: every value draws its own sigma, uniform in the range",
        _parse_range("gaussian"),
        lambda c: f"gaussian:{_num(c.sigma)}" + (f"-{_num(c.sigma_max)}" if c.sigma_max is not None else ""),
        lambda c: (lambda x, g: gaussian(x, c.sigma, g)) if c.sigma_max is None
        else (lambda x, g: heteroscedastic(x, c.sigma, c.sigma_max, g)),
        _check_gaussian,
    ),
    "gaussian-image": NoiseKind(
        "gaussian-image:MIN-MAX", "blind denoising: every image draws one sigma, uniform in the range, for all its values",
        _parse_range("gaussian-image"), lambda c: f"gaussian-image:{_num(c.sigma)}-{_num(c.sigma_max)}",
        lambda c: lambda x, g: per_image(x, c.sigma, c.sigma_max, g), _check_range,
    ),
    "gaussian-map": NoiseKind(
        "gaussian-map:PATH.npy", "a fixed per-pixel sigma map (H x W, or C x H x W)",
        lambda arg: NoiseConfig(kind="gaussian-map", map=arg), lambda c: f"gaussian-map:{c.map}", _with_map,
        lambda c: None if c.map else "noise kind gaussian-map needs a map path",
    ),
    "mask": NoiseKind(
        "mask:FRACTION", "masking (dropout) noise: that fraction of pixels set to 0 (all channels)",
        lambda arg: NoiseConfig(kind="mask", fraction=float(arg)), lambda c: f"mask:{_num(c.fraction)}",
        lambda c: lambda x, g: mask(x, c.fraction, g), _check_fraction,
    ),
    "saltpepper": NoiseKind(
        "saltpepper:FRACTION", "that fraction of pixels set to 0 or 1, half each (all channels)",
        lambda arg: NoiseConfig(kind="saltpepper", fraction=float(arg)), lambda c: f"saltpepper:{_num(c.fraction)}",
        lambda c: lambda x, g: salt_and_pepper(x, c.fraction, g), _check_fraction,
    ),
}
GRAMMAR = " | ".join(k.grammar for k in KINDS.values())


@dataclass
class NoiseConfig:
    kind: Literal[tuple(KINDS)] = option("none", "the corruption: " + ", ".join(KINDS))  # type: ignore[valid-type]
    sigma: float = option(0.0, "gaussian: the standard deviation (the lower end when sigma_max is set)")
    sigma_max: float | None = option(None, "gaussian: upper end of a heteroscedastic sigma range")
    fraction: float = option(0.0, "mask / saltpepper: fraction of pixels hit")
    map: str | None = option(None, "gaussian-map: path of a .npy per-pixel sigma map")
    where: Literal["working", "native"] = option(
        "working", "where the noise is added: working: to the images at the working size, so sigma is the noise "
        "of the images the model denoises; native: at the data's own size, then resized with the clean copy (the "
        "book's order; a smoothing resize shrinks the noise: sigma 0.2 at 64x64 is about 0.08 at 32x32 with the "
        "default bicubic, 0.19 with legacy-bicubic, which takes every other pixel)",
        legacy="native", since="2026-12-02T00:19")  # the only order before this key: a run written then added its noise at the native size

    def spec(self) -> str:
        """The SPEC string of this corruption."""
        return KINDS[self.kind].spec(self)

    def check(self) -> str | None:
        """Why this corruption is impossible, or None."""
        return KINDS[self.kind].check(self)


def parse_noise(spec: str, key: str = "noise") -> NoiseConfig:
    """Parse a SPEC string; a bad one is a ConfigError that shows the grammar, naming ``key`` (the setting or argument
    that gave it: ``add_noise`` for ``aekit denoise``)."""
    text = spec.strip()

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{key} {spec!r}: {why} (grammar: {GRAMMAR})", keys=key)

    if text in ("", "none"):
        return NoiseConfig()
    name, sep, arg = text.partition(":")
    if name not in KINDS:
        raise bad(f"unknown noise kind {name!r}{did_you_mean(name, KINDS)}")
    if not sep or not arg:
        raise bad("expected KIND:VALUE")
    try:
        cfg = KINDS[name].parse(arg)
    except ValueError:
        raise bad(f"{arg!r} is not a number") from None
    problem = cfg.check()
    if problem:
        raise bad(problem)
    return cfg


SEEDS = 2**31  # a seed lies in [0, SEEDS): numpy's are 32-bit, and the offsets added to a run's seed fit
# The run's random streams, each seeded with the run's seed plus its offset here (one home: history.csv's
# held-out figures and metrics.json's are comparable because both draw SEED_HELDOUT's noise)
SEED_TRAINING = 1  # the training corruption (plus 7919 x the process's rank)
SEED_HELDOUT = 2  # the held-out and training-image scores
SEED_START = 3  # the data-initialised start's images, the report's pictures
SEED_VALIDATION = 4  # the validation images (model selection)


def file_noise(seed: int, name) -> torch.Generator:
    """The generator of one file's noise (``aekit denoise --add-noise``): from the seed and the file's name, so a file
    gets the same noise whichever other files are given with it."""
    digest = hashlib.sha256(f"{seed}\0{name}".encode("utf-8", "surrogateescape")).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def seed_problem(seed: int) -> str | None:
    """Why ``seed`` cannot seed a run or a noise draw ("seed " + it says so), or None."""
    return None if 0 <= seed < SEEDS else f"must lie in [0, {SEEDS - 1}], got {seed}"


def check_seed(seed: int) -> None:
    """The seed of a noise draw, in [0, SEEDS); else a one-line error."""
    if problem := seed_problem(seed):
        raise ConfigError(f"seed {problem}", keys="seed")


def make_corruption(cfg: NoiseConfig) -> Corruption | None:
    """A function ``(x, generator) -> corrupted x`` for ``cfg`` (None for no corruption)."""
    problem = cfg.check()
    if problem:
        raise ConfigError(problem)
    return KINDS[cfg.kind].make(cfg)
