"""Pictures of a run: reconstruction grids, loss and code curves (PNG, written atomically)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .io import write_with


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (N, H, W, C) uint8."""
    arr = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return arr.transpose(0, 2, 3, 1)


def image_grid(rows: Sequence[torch.Tensor], *, pad: int = 2, scale: int = 2) -> Image.Image:
    """Stack rows of (N, C, H, W) images (same N, C, H, W) into one picture, white gaps between."""
    n, c, h, w = rows[0].shape
    grid = np.full(
        (len(rows) * (h + pad) + pad, n * (w + pad) + pad, c), 255, dtype=np.uint8
    )
    for r, row in enumerate(rows):
        for i, img in enumerate(to_uint8(row)):
            y, x = pad + r * (h + pad), pad + i * (w + pad)
            grid[y : y + h, x : x + w] = img
    mode = "L" if c == 1 else "RGB"
    pic = Image.fromarray(grid[..., 0] if c == 1 else grid, mode=mode)
    if scale != 1:
        pic = pic.resize((pic.width * scale, pic.height * scale), Image.NEAREST)
    return pic


def save_png(picture: Image.Image, path: str | Path) -> None:
    write_with(path, lambda tmp: picture.save(tmp, format="PNG"))


def save_loss_plot(history: Sequence[dict], path: str | Path, *, title: str = "") -> None:
    """Training loss per sample by epoch, with the held-out loss where it was computed."""
    write_with(path, lambda tmp: tmp.write_bytes(png_bytes(loss_figure(history, title=title))))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_figure(history: Sequence[dict], *, title: str = ""):
    """A matplotlib figure of the training (and held-out) loss per sample by epoch, log scale when
    the loss is positive."""
    epochs = [h["epoch"] for h in history]
    fig, ax = _pyplot().subplots(figsize=(7, 4), dpi=100)
    ax.plot(epochs, [h["loss_per_sample"] for h in history], label="training")
    held = [(h["epoch"], h["heldout_loss_per_sample"]) for h in history if h.get("heldout_loss_per_sample") is not None]
    if held:
        ax.plot(*zip(*held), "o-", label="held-out", markersize=3)
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("average loss per sample")
    values = [h["loss_per_sample"] for h in history] + [v for _, v in held]
    if min(values, default=1.0) > 0:  # log scale, unless the loss goes negative (loss = "psnr")
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def code_figure(history: Sequence[dict]):
    """The code's mean activation and its spread across images (per-unit std) by epoch."""
    epochs = [h["epoch"] for h in history]
    fig, ax = _pyplot().subplots(figsize=(7, 3), dpi=100)
    ax.plot(epochs, [h["code_mean"] for h in history], label="code mean")
    ax.plot(epochs, [h["code_std"] for h in history], label="code spread (per-unit std across images)")
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def code_histogram_figure(codes: torch.Tensor, threshold: float):
    """Two histograms of a code matrix (N, units): every activation, and each unit's mean activation
    over the images; a dashed line marks the 'small activation' threshold."""
    codes = codes.detach().float().cpu()
    fig, axes = _pyplot().subplots(1, 2, figsize=(9, 3.2), dpi=100)
    for ax, values, what in (
        (axes[0], codes.flatten(), f"activations ({codes.shape[0]} images x {codes.shape[1]} units)"),
        (axes[1], codes.mean(0), "per-unit mean activation"),
    ):
        ax.hist(values.numpy(), bins=50, color="tab:blue")
        ax.axvline(threshold, color="tab:red", linestyle="--", linewidth=1, label=f"{threshold:g}")
        small = float((values.abs() < threshold).float().mean())
        ax.set_title(f"{what}\n{small:.1%} below {threshold:g} in magnitude", fontsize=9)
        ax.set_yscale("log")
        ax.set_ylabel("count")
    fig.tight_layout()
    return fig


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes; closes it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _pyplot().close(fig)
    return buf.getvalue()
