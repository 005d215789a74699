"""Pictures: image grids, loss and code curves, histograms (PNG, written atomically).

Figures are drawn with matplotlib's object-oriented API (``matplotlib.figure.Figure`` and the Agg
canvas): no pyplot, no global backend, nothing left open.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from ..data import resize
from ..files import write_bytes, write_with


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


def save_figure(fig: Figure, path: str | Path) -> None:
    write_bytes(path, png_bytes(fig))


def figure(*, figsize: tuple[float, float], ncols: int = 1, dpi: int = 100):
    """A new figure and its axes (one, or a list of ``ncols``), on the Agg canvas."""
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def loss_figure(history: Sequence[dict], *, title: str = "", selection: dict | None = None):
    """A matplotlib figure of the training (held-out, validation) loss per sample by epoch, log scale when
    the loss is positive; the model selection's choice (``selection``: the start is epoch 0) starred."""
    epochs = [h["epoch"] for h in history]
    fig, ax = figure(figsize=(7, 4))
    ax.plot(epochs, [h["loss_per_sample"] for h in history], label="training")
    held = [(h["epoch"], h["heldout_loss_per_sample"]) for h in history if h.get("heldout_loss_per_sample") is not None]
    if held:
        ax.plot(*zip(*held), "o-", label="held-out", markersize=3)
    val = [(h["epoch"], h["val_loss_per_sample"]) for h in history if h.get("val_loss_per_sample") is not None]
    if val:  # train.select: the curve the model was chosen on, and its choice
        ax.plot(*zip(*val), label="validation")
        chosen = min(val, key=lambda p: p[1])
        if selection and selection.get("chosen_epoch") is not None:
            chosen = (selection["chosen_epoch"], selection["validation_loss"])
        what = "the start" if chosen[0] == 0 else f"epoch {chosen[0]:g}"
        ax.plot([chosen[0]], [chosen[1]], "k*", markersize=10, label=f"chosen ({what})")
        held += [*val, chosen]
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    values = [h["loss_per_sample"] for h in history] + [v for _, v in held]
    if min(values, default=1.0) > 0:  # log scale, unless the loss goes negative (loss = "psnr")
        ax.set_yscale("log")
        ax.set_ylabel("average loss per sample (log scale)")
    else:
        ax.set_ylabel("average loss per sample (lower is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def code_figure(history: Sequence[dict]):
    """The code's mean activation and its spread across images (per-unit std) by epoch."""
    epochs = [h["epoch"] for h in history]
    fig, ax = figure(figsize=(7, 3))
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
    fig, axes = figure(figsize=(9, 3.2), ncols=2)
    for ax, values, what in (
        (axes[0], codes.flatten(), f"activations ({codes.shape[0]} images x {codes.shape[1]} units)"),
        (axes[1], codes.mean(0), "per-unit mean activation"),
    ):
        ax.hist(values.numpy(), bins=50, color="tab:blue")
        for edge in (threshold, -threshold) if float(codes.min()) < 0 else (threshold,):  # signed codes: both sides
            ax.axvline(edge, color="tab:red", linestyle="--", linewidth=1)
        ax.set_xlabel("code value")
        small = float((values.abs() < threshold).float().mean())
        ax.set_title(f"{what}\n{small:.1%} below {threshold:g} in magnitude", fontsize=9)
        ax.set_yscale("log")
        ax.set_ylabel("count")
    fig.tight_layout()
    return fig


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


GRID_SIDE = 96  # pixels per image in aekit denoise's grid


def grid_view(x: torch.Tensor) -> torch.Tensor:
    """(C, GRID_SIDE, GRID_SIDE) of a (C, H, W) image for the grid: the centre at the image's own pixels
    when it is large enough (shrinking it would hide the noise and the denoising), else enlarged."""
    h, w = x.shape[-2:]
    if min(h, w) >= GRID_SIDE:
        top, left = (h - GRID_SIDE) // 2, (w - GRID_SIDE) // 2
        return x[:, top:top + GRID_SIDE, left:left + GRID_SIDE]
    return resize(x[None], (GRID_SIDE, GRID_SIDE), "bicubic")[0]
