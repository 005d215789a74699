"""A training run end to end: data, model, the loop, and the run folder.

The run folder (``--out``, default ``runs/<name>-<timestamp>``) holds:

    config.toml          the fully resolved configuration (``aekit train --config`` it to re-run)
    model.json           architecture, constructor arguments, preprocessing, aekit version
    model.safetensors    the weights
    history.csv          one row per epoch: loss per sample, code mean, held-out metrics, seconds
    metrics.json         final training and held-out figures; written last, so its presence
                         (with "status": "complete") marks a finished run
    reconstructions.png  originals above reconstructions, at the data's resolution
    loss.png             the training (and held-out) loss curve
    skipped.txt          only with --skip-bad and unreadable files: one "path: reason" per line
"""

from __future__ import annotations

import csv
import io as _io
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import torch

from . import __version__
from .config import Config, dump_config, replace
from .data import ImageData, fit_images, load_from_config, resize, select, split_indices, take
from .errors import AekitError, ConfigError
from .io import MODEL_JSON, save, write_json, write_text
from .models import create_model
from .report import image_grid, save_loss_plot, save_png
from .train import EpochStats, evaluate, fit

HISTORY_COLUMNS = [
    "epoch",
    "loss_per_sample",
    "code_mean",
    "code_std",
    "heldout_loss_per_sample",
    "heldout_code_mean",
    "heldout_mse",
    "heldout_psnr",
    "heldout_ssim",
    "seconds",
]


@dataclass
class Prepared:
    data: ImageData  # the whole source at native resolution (a folder: at the working size)
    train_index: list[int]
    test_index: list[int]
    train_x: torch.Tensor  # (N_train, C, H, W) at the working size; streaming: an ImageFiles dataset
    test_x: torch.Tensor  # (N_test, C, H, W) at the working size (may be empty); streaming: ImageFiles


@dataclass
class RunResult:
    out: Path
    model: torch.nn.Module
    history: list[EpochStats]
    metrics: dict


def working_size(cfg: Config) -> tuple[int, int]:
    size = tuple(cfg.data.size or cfg.model.input_size)
    if size != tuple(cfg.model.input_size):
        raise ConfigError(
            f"data.size {size[0]}x{size[1]} differs from model.input_size "
            f"{cfg.model.input_size[0]}x{cfg.model.input_size[1]}"
        )
    return size


def prepare_data(cfg: Config) -> Prepared:
    """Load the source, split it (seeded) and fit both parts to the working size.

    The images' channels (``data.channels``) decide the model's: see :func:`train`."""
    size = working_size(cfg)
    data = load_from_config(cfg.data, size=size)
    tr, te = split_indices(data, split=cfg.data.split, test_fraction=cfg.data.test_fraction)
    x = fit_images(data.images, size, cfg.data.fit, cfg.data.resize, name=data.source)
    return Prepared(data, list(tr), list(te), select(x, tr), select(x, te))


def default_out(cfg: Config) -> Path:
    return Path("runs") / f"{cfg.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty folder unless ``overwrite`` (and then only an aekit run folder)."""
    if out.exists():
        if not out.is_dir():
            raise AekitError(f"--out {out}: exists and is not a folder")
        if any(out.iterdir()):
            if not overwrite:
                raise AekitError(f"--out {out}: folder exists and is not empty (add --overwrite to replace it)")
            if not ((out / "config.toml").exists() or (out / MODEL_JSON).exists()):
                raise AekitError(
                    f"--out {out}: not an aekit run folder (no config.toml or model.json); "
                    "refusing to delete it, even with --overwrite"
                )
            shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise AekitError(f"--out {out}: cannot write there ({e.strerror})") from None


def history_rows(history: list[EpochStats]) -> list[dict]:
    rows = []
    for s in history:
        row = {
            "epoch": s.epoch,
            "loss_per_sample": s.loss_per_sample,
            "code_mean": s.code_mean,
            "code_std": s.code_std,
            "seconds": round(s.seconds, 4),
        }
        for k in ("loss_per_sample", "code_mean", "mse", "psnr", "ssim"):
            row[f"heldout_{k}"] = s.heldout.get(k)
        rows.append(row)
    return rows


def write_history(path: Path, history: list[EpochStats]) -> None:
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in history_rows(history):
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    write_text(path, buf.getvalue())


def train(
    cfg: Config,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Train ``cfg`` and write its run folder; returns the folder, model, history and metrics."""
    t_start = time.perf_counter()
    prepared = prepare_data(cfg)
    cfg = replace(cfg, **{"model.in_channels": prepared.data.channels})  # data.channels decides
    torch.manual_seed(cfg.seed)  # fixes the initialisation
    model = create_model(cfg.model)
    out = Path(out) if out is not None else default_out(cfg)
    prepare_out(out, overwrite)
    write_text(out / "config.toml", dump_config(cfg))
    if prepared.data.skipped:
        write_text(out / "skipped.txt", "".join(f"{line}\n" for line in prepared.data.skipped))
        (log or print)(f"Skipped {len(prepared.data.skipped)} unreadable image files (listed in {out / 'skipped.txt'})")
    preprocess = {
        "size": list(working_size(cfg)),
        "resize": cfg.data.resize,
        "channels": cfg.model.in_channels,
        "fit": cfg.data.fit,
    }

    history: list[EpochStats] = []

    def on_epoch(stats: EpochStats) -> None:
        history.append(stats)
        write_history(out / "history.csv", history)

    fit(
        model,
        prepared.train_x,
        cfg.train,
        seed=cfg.seed,
        test_images=prepared.test_x if len(prepared.test_x) else None,
        on_epoch=on_epoch,
        progress=progress,
        log=log,
    )
    model.eval()
    save(model, out, preprocess=preprocess)
    metrics = final_metrics(cfg, model, prepared, history, time.perf_counter() - t_start)
    write_pictures(cfg, model, prepared, history, out)
    write_json(out / "metrics.json", metrics)  # last: marks the run complete
    return RunResult(out=out, model=model, history=history, metrics=metrics)


def final_metrics(cfg: Config, model, prepared: Prepared, history: list[EpochStats], seconds: float) -> dict:
    last = history[-1]
    train_eval = evaluate(model, prepared.train_x)
    heldout = dict(last.heldout) if last.heldout else None
    if heldout is not None:
        heldout["images"] = len(prepared.test_x)
    return {
        "status": "complete",
        "aekit_version": __version__,
        "name": cfg.name,
        "epochs": last.epoch,
        "seconds": round(seconds, 2),
        "loss_unit": _loss_unit(cfg),
        "train": {
            "images": len(prepared.train_x),
            "loss_per_sample_last_epoch": last.loss_per_sample,  # as the loop reported it
            "code_mean_last_epoch": last.code_mean,
            **train_eval,  # after training, in eval mode, over every training image
        },
        "heldout": heldout,
    }


def _loss_unit(cfg: Config) -> str:
    h, w = cfg.model.input_size
    return {
        "l2": f"half the summed squared error of one {h}x{w} image (tf.nn.l2_loss), per sample",
        "mse": "mean squared error per value, per sample",
        "bce": f"summed binary cross-entropy of one {h}x{w} image, per sample",
    }[cfg.model.loss]


@torch.no_grad()
def write_pictures(cfg: Config, model, prepared: Prepared, history: list[EpochStats], out: Path) -> None:
    """reconstructions.png (held-out faces when there are any) and loss.png."""
    use_test = len(prepared.test_x) > 0
    index = (prepared.test_index if use_test else prepared.train_index)[:10]
    x = take(prepared.test_x if use_test else prepared.train_x, range(len(index)))
    device = next(model.parameters()).device
    recon = model(x.to(device)).recon.float().cpu()
    originals = take(prepared.data.images, index) if cfg.data.fit == "resize" else x  # crop/pad: as fitted
    recon_full = resize(recon, tuple(originals.shape[-2:]), cfg.data.resize)
    save_png(image_grid([originals, recon_full]), out / "reconstructions.png")
    save_loss_plot(history_rows(history), out / "loss.png", title=cfg.name)
