"""Synthetic images: dead leaves, a model of what natural images are made of (``train.synthetic``).

Dead leaves (Matheron 1968; Lee, Mumford and Huang 2001): discs of random grey levels (or colours),
with radii of density r**-3 (scale invariant), dropped one under another until they cover the
picture. What a photograph is made of, in the large: flat regions and sharp occluding edges at every
scale. A denoiser that sees some of them beside its training images learns images in general a
little more and its training collection a little less (benchmarks/README.md#denoising).
"""

from __future__ import annotations

import torch


def dead_leaves(n: int, channels: int, size: tuple[int, int], generator: torch.Generator, *, discs: int = 120,
                smallest: float = 1.0, largest: float = 0.5) -> torch.Tensor:
    """``n`` dead-leaves images (n, channels, H, W) in [0, 1], drawn from ``generator`` (on its device).

    ``discs`` discs per image, radii between ``smallest`` pixels and ``largest`` times the longer side,
    with density r**-3; each new disc goes under the earlier ones (composited front to back), and a random
    background shows where none falls. A disc's edge covers a pixel in proportion to how far inside it
    the pixel's centre lies (within half a pixel), so edges are anti-aliased as a camera's are."""
    h, w = size
    side = max(h, w)
    dev = generator.device
    rand = lambda *shape: torch.rand(*shape, generator=generator, device=dev)  # noqa: E731
    ys, xs = torch.arange(h, device=dev) + 0.5, torch.arange(w, device=dev) + 0.5  # pixel centres
    lo, hi = smallest**-2, (largest * side) ** -2  # inverse transform sampling of the r**-3 density
    u = rand(3, discs, n)
    radius = (lo - u[0] * (lo - hi)) ** -0.5
    cy, cx = u[1] * h, u[2] * w
    colours = rand(discs, n, channels, 1, 1)
    img = torch.zeros(n, channels, h, w, device=dev)
    seen = torch.zeros(n, 1, h, w, device=dev)  # how much of each pixel the discs so far cover
    for i in range(discs):
        d2 = (ys - cy[i, :, None])[:, :, None] ** 2 + (xs - cx[i, :, None])[:, None, :] ** 2  # (n, h, w)
        alpha = (radius[i, :, None, None] + 0.5 - d2.sqrt()).clamp(0, 1)[:, None] * (1 - seen)
        img += alpha * colours[i]
        seen += alpha
    return img + (1 - seen) * rand(n, channels, 1, 1)


def mix_synthetic(x: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """``x`` (B, C, H, W) with its first round(fraction x B) images replaced by dead leaves of the same
    size and channels (a training batch is shuffled, so which ones does not matter)."""
    k = round(fraction * len(x))
    if not k:
        return x
    leaves = dead_leaves(k, x.shape[1], tuple(x.shape[-2:]), generator).to(device=x.device, dtype=x.dtype)
    return torch.cat([leaves, x[k:]])
