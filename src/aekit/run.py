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
    code_histogram.png   histograms of the code's activations and of each unit's mean activation
    report.html          everything above on one self-contained page (``aekit report RUN`` rebuilds it)
    tensorboard/         scalars and image grids for TensorBoard, with ``--tensorboard``
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
from .folders import ImageFiles
from .checkpoint import prune, read_checkpoint, write_checkpoint
from .io import MODEL_JSON, save, write_json, write_text
from .models import create_model
from .noise import NoiseConfig, make_corruption
from .report import code_histogram_figure, image_grid, png_bytes, save_loss_plot, save_png
from .report_html import write_report
from .tensorboard_log import TensorBoardLog
from .train import EpochStats, Prepare, evaluate, fit

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
    "code_small",
]


@dataclass
class Prepared:
    data: ImageData  # the whole source at native resolution (a folder: at the working size)
    train_index: list[int]
    test_index: list[int]
    train_x: torch.Tensor  # (N_train, C, H, W) at the working size; streaming: an ImageFiles dataset
    test_x: torch.Tensor  # (N_test, C, H, W) at the working size (may be empty); streaming: ImageFiles
    size: tuple[int, int]  # the working size

    @property
    def train_native(self) -> "torch.Tensor | ImageFiles":
        return select(self.data.images, self.train_index)

    @property
    def test_native(self) -> "torch.Tensor | ImageFiles":
        return select(self.data.images, self.test_index)


def make_prepare(noise: NoiseConfig, size: tuple[int, int], fit: str, method: str) -> Prepare | None:
    """(model input, loss target) from a clean batch at native resolution: corrupt, then fit both
    to the working size.

    None when there is no corruption: then the data is fitted once, up front (the fast path).
    """
    corrupt = make_corruption(noise)
    if corrupt is None:
        return None

    def prepare(x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return fit_images(corrupt(x, g), size, fit, method), fit_images(x, size, fit, method)

    return prepare


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
    return Prepared(data, list(tr), list(te), select(x, tr), select(x, te), size)


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
            "code_small": s.code_small,
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
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Train ``cfg`` and write its run folder; returns the folder, model, history and metrics.

    With ``resume`` the run in ``out`` continues exactly from its last checkpoint; ``cfg`` must be the
    run's own config.toml, except for the number of epochs, the time limit, the device, threads and compile.
    """
    from .train import Distributed

    t_start = time.perf_counter()
    dist = Distributed.current()
    main_process = dist.rank == 0
    if dist.world > 1:
        from .distributed import check_same_config

        check_same_config({**_flatten(cfg.to_dict()), "resume": resume})
    state = None
    if resume:
        if out is None:
            raise AekitError("--resume needs the run folder to continue")
        out = Path(out)
        _check_resumable(out, cfg)
        _, state = read_checkpoint(out)
    prepared = prepare_data(cfg)
    cfg = replace(cfg, **{"model.in_channels": prepared.data.channels})  # data.channels decides
    torch.manual_seed(cfg.seed)  # fixes the initialisation
    model = create_model(cfg.model)
    out = Path(out) if out is not None else default_out(cfg)
    if main_process:
        if not resume:
            prepare_out(out, overwrite)
        write_text(out / "config.toml", dump_config(cfg))
    if prepared.data.skipped and main_process:
        write_text(out / "skipped.txt", "".join(f"{line}\n" for line in prepared.data.skipped))
        (log or print)(f"Skipped {len(prepared.data.skipped)} unreadable image files (listed in {out / 'skipped.txt'})")
    preprocess = {
        "size": list(working_size(cfg)),
        "resize": cfg.data.resize,
        "channels": cfg.model.in_channels,
        "fit": cfg.data.fit,
    }

    history: list[EpochStats] = []
    tensorboard = (
        TensorBoardLog.for_run(cfg, out, model, prepared) if cfg.train.tensorboard and main_process else None
    )
    saved = {"epoch": 0, "at": time.perf_counter()}
    latest: dict = {}

    def checkpoint(snapshot: Callable[[], dict], pointers: tuple[str, ...], extra: dict | None = None) -> None:
        st = snapshot()  # collective under torch.distributed: every process takes part
        if main_process:
            write_checkpoint(out, model, st, preprocess=preprocess, pointers=pointers, extra=extra)
            prune(out, cfg.train.checkpoint_every)
        saved["at"] = time.perf_counter()
        if "last" in pointers:  # a 'best'-only checkpoint leaves 'last' behind
            saved["epoch"] = st["epoch"]

    def on_epoch(stats: EpochStats, snapshot: Callable[[], dict]) -> None:
        history.append(stats)
        latest["snapshot"] = snapshot
        t = cfg.train
        pointers = []
        due = snapshot.agree(time.perf_counter() - saved["at"] >= t.checkpoint_seconds)
        if due or (t.checkpoint_every and stats.epoch % t.checkpoint_every == 0):
            pointers.append("last")
        heldout = [h.heldout["loss_per_sample"] for h in history if h.heldout]
        if stats.heldout and stats.heldout["loss_per_sample"] <= min(heldout):
            pointers.append("best")
        if pointers:
            extra = {"heldout_loss_per_sample": stats.heldout["loss_per_sample"]} if "best" in pointers else None
            checkpoint(snapshot, tuple(pointers), extra)
        if main_process:
            write_history(out / "history.csv", history)
            if tensorboard is not None:
                tensorboard.log_epoch(stats)

    prepare = make_prepare(cfg.noise, prepared.size, cfg.data.fit, cfg.data.resize)
    train_x, test_x = (
        (prepared.train_x, prepared.test_x) if prepare is None else (prepared.train_native, prepared.test_native)
    )
    if state is not None:
        history.extend(EpochStats(**h) for h in state["history"])
    result = fit(
        model,
        train_x,
        cfg.train,
        seed=cfg.seed,
        test_images=test_x if len(test_x) else None,
        prepare=prepare,
        on_epoch=on_epoch,
        progress=progress,
        log=log,
        state=state,
    )
    if latest and saved["epoch"] != history[-1].epoch:
        checkpoint(latest["snapshot"], ("last",))  # the final state, for --resume --epochs N
    if tensorboard is not None:
        tensorboard.close()
    model.eval()
    if not main_process:
        return RunResult(out=out, model=model, history=history, metrics={})
    save(model, out, preprocess=preprocess)
    metrics = final_metrics(cfg, model, prepared, prepare, history, time.perf_counter() - t_start)
    metrics["stopped"] = result.stopped
    write_pictures(cfg, model, prepared, prepare, history, out)
    write_report(out, metrics=metrics)  # before metrics.json, which marks the run complete
    write_json(out / "metrics.json", metrics)  # last: marks the run complete
    return RunResult(out=out, model=model, history=history, metrics=metrics)


RESUME_MAY_CHANGE = ("train.epochs", "train.max_minutes", "train.device", "train.threads", "train.compile")


def _check_resumable(out: Path, cfg: Config) -> None:
    """A resume keeps the run's configuration, except for the few settings it may change."""
    from .config import load_config

    if not (out / "config.toml").is_file():
        raise AekitError(f"--resume {out}: no config.toml (not an aekit run folder)")
    own = _flatten(load_config(out / "config.toml").to_dict())
    for key, value in _flatten(cfg.to_dict()).items():
        if key not in RESUME_MAY_CHANGE and own.get(key) != value:
            raise AekitError(
                f"--resume {out}: {key} differs from the run's config.toml ({own.get(key)!r} there, {value!r} now); "
                f"a resume may only change {', '.join(RESUME_MAY_CHANGE)}"
            )


def _flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def final_metrics(
    cfg: Config, model, prepared: Prepared, prepare: Prepare | None, history: list[EpochStats], seconds: float
) -> dict:
    last = history[-1]
    if prepare is None:
        train_eval = evaluate(model, prepared.train_x)
    else:  # denoising: corrupted inputs (seeded), scored against the clean images
        train_eval = evaluate(model, prepared.train_native, prepare=prepare, seed=cfg.seed + 2)
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
        "noise": cfg.noise.spec(),
        "train": {
            "images": len(prepared.train_x),
            "loss_per_sample_last_epoch": last.loss_per_sample,  # as the loop reported it
            "code_mean_last_epoch": last.code_mean,
            "code_small_last_epoch": last.code_small,  # fraction of code values below metrics.SMALL_ACTIVATION
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
        "psnr": "minus the PSNR in dB (peak 1), per sample",
    }[cfg.model.loss]


@torch.no_grad()
def write_pictures(
    cfg: Config, model, prepared: Prepared, prepare: Prepare | None, history: list[EpochStats], out: Path
) -> None:
    """reconstructions.png and, for denoising runs, denoising.png (held-out images when there are
    any), and loss.png."""
    use_test = len(prepared.test_x) > 0
    index = (prepared.test_index if use_test else prepared.train_index)[:10]
    fitted = take(prepared.test_x if use_test else prepared.train_x, range(len(index)))  # working size
    # resize: show the originals at their own resolution; crop/pad: as fitted
    originals = take(prepared.data.images, index) if cfg.data.fit == "resize" else fitted
    device = next(model.parameters()).device

    def upsized(x: torch.Tensor) -> torch.Tensor:
        return resize(model(x.to(device)).recon.float().cpu(), tuple(originals.shape[-2:]), cfg.data.resize)

    save_png(image_grid([originals, upsized(fitted)]), out / "reconstructions.png")
    if prepare is not None:
        gen = torch.Generator(device=device).manual_seed(cfg.seed + 3)
        noisy, _ = prepare(take(prepared.data.images, index).to(device), gen)
        noisy = noisy.cpu()
        shown = resize(noisy, tuple(originals.shape[-2:]), cfg.data.resize)
        save_png(image_grid([originals, shown, upsized(noisy)]), out / "denoising.png")
    save_loss_plot(history_rows(history), out / "loss.png", title=cfg.name)
    write_code_histogram(model, prepared.train_x, out / "code_histogram.png")


CODE_HISTOGRAM_IMAGES = 1000  # at most this many training images feed code_histogram.png


@torch.no_grad()
def write_code_histogram(model, images: "torch.Tensor | ImageFiles", path: Path) -> None:
    """code_histogram.png: the codes of (up to 1000) clean training images, every activation and
    each unit's mean, with the metrics.SMALL_ACTIVATION threshold marked."""
    from .io import write_with
    from .metrics import SMALL_ACTIVATION

    device = next(model.parameters()).device
    n = min(len(images), CODE_HISTOGRAM_IMAGES)
    codes = torch.cat([
        model(take(images, range(i, min(i + 200, n))).to(device)).code.float().cpu() for i in range(0, n, 200)
    ])
    png = png_bytes(code_histogram_figure(codes, SMALL_ACTIVATION))
    write_with(path, lambda tmp: tmp.write_bytes(png))
