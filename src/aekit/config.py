"""Typed configuration: dataclasses for data, model, training and noise (read from and written to TOML files by
:mod:`aekit.config_file`).

A run is described by one :class:`Config`. TOML files hold the same tables (``[data]``,
``[model]``, ``[train]``, ``[noise]``); unknown keys, wrong types and impossible values are reported
as a :class:`~aekit.errors.ConfigError` naming the key. Every field is declared once, with its
default, help, command-line flag and whether a resume may change it (:func:`aekit.typed.option`):
``aekit train``'s options and docs/configuration.md are generated from these fields.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

from .data import MAX_SIDE, FitMethod, ImageData, ResizeMethod, SplitName, load_data, parse_size, size_problem
from .data.folders import STREAM_ABOVE_BYTES
from .errors import ConfigError
from .models import ModelConfig, build_model_config, config_class, list_models, model_class
from .noise import NoiseConfig, parse_noise, seed_problem
from .typed import Option, build, option, options, to_plain

OPTIONS = "options"  # the ``where`` of a configuration built from options (the command line's, or aekit.train's)


@dataclass
class DataConfig:
    source: str = option("olivetti", "data source: olivetti (scikit-learn's Olivetti faces), lfw-subset (scikit-image's "
                         "100 LFW faces), a folder of images, or a .npy/.npz file", flag="--data", metavar="SOURCE")
    order_seed: int = option(1000, "fixes the data order, hence the split (Olivetti: random_state; 1000 is the "
                             "reference's)")
    data_home: str | None = option(None, "scikit-learn data folder (default: $SCIKIT_LEARN_DATA or "
                                   "~/scikit_learn_data)", flag="--data-home", metavar="DIR")
    size: tuple[int, int] | None = option(None, "working size HxW, e.g. 64x64 or 64 (also the model's input size; default: "
                                          "the model's, 32x32; unet and fcn: the images' own, when they share one; at most "
                                          f"{MAX_SIDE} a side)",
                                          flag="--size", metavar="HxW", also=("model.input_size",), parse=parse_size)
    resize: ResizeMethod = option("bicubic", "resize to the working size; legacy-bicubic is TF1's resize_images",
                                  flag="--resize")
    split: SplitName = option("random", "held-out split: random (the last test_fraction of the "
                                                 "seeded order) or subject (whole labels: unseen people)",
                                                 flag="--split")
    test_fraction: float = option(0.2, "held-out fraction for the random split (0 trains on everything)",
                                  flag="--test-fraction", metavar="F")
    fit: FitMethod = option("resize", "to the working size: resize (stretch), crop (fill, cut the centre), pad (fit, "
                            "black borders), window (the centre, native resolution: for denoisers), tiles (every "
                            "non-overlapping window of the size, a centred grid, native resolution)", flag="--fit")
    channels: Literal["auto", 1, 3] = option("auto", "auto: 1 when every image is grayscale, else 3 (the model "
                                             "follows)", flag="--channels")
    layout: Literal["auto", "nhwc", "nchw"] = option("auto", "axis order of a 4-d array; auto: the channel axis is "
                                                     "the one of 1, 3 or 4", flag="--layout")
    rescale: bool = option(False, "arrays: map min..max to 0..1 instead of refusing floats outside [0, 1]",
                           flag="--rescale")
    skip_bad: bool = option(False, "folders: skip unreadable image files (listed in the run's skipped.txt) "
                            "instead of stopping", flag="--skip-bad")
    stream: Literal["auto", "on", "off"] = option("auto", "folders: decode from disk every epoch (auto: when the "
                                                  f"decoded images exceed {STREAM_ABOVE_BYTES / 2**30:g} GiB)", flag="--stream")
    workers: int | None = option(None, "folders: DataLoader worker processes decoding the images (default: one "
                                 "per CPU core, at most 4; at most four per core)", flag="--workers", metavar="N")


@dataclass
class TrainConfig:
    epochs: int = option(600, "passes over the training set (with train.select, the most it may take)", flag="--epochs",
                         metavar="N", resume=True)
    batch_size: int = option(50, "samples per optimisation step", flag="--batch-size", metavar="N")
    lr: float = option(1e-3, "Adam learning rate", flag="--lr", metavar="LR")
    beta1: float = option(0.9, "Adam beta1 (TF1 default)")
    beta2: float = option(0.999, "Adam beta2 (TF1 default)")
    eps: float = option(1e-8, "Adam epsilon (TF1 default)")
    reference_loop: bool = option(False, "reproduce the reference's range(0, N - batch, batch): skips the last batch")
    device: str = option("auto", "auto (CUDA when present, then MPS, else the CPU), cpu, cuda, cuda:N or mps",
                         flag="--device", metavar="DEV", resume=True)
    eval_every: int = option(10, "held-out metrics every K epochs (and always at the end); 0: only at the end",
                             flag="--eval-every", metavar="K")
    threads: int = option(0, "torch CPU threads (at most one per core); 0 leaves torch's default", flag="--threads",
                          metavar="N",
                          resume=True)
    tensorboard: bool = option(False, "also log scalars and image grids to RUN/tensorboard/ (pip install "
                               "'aekit[tensorboard]')", flag="--tensorboard")
    schedule: Literal["constant", "cosine"] = option("constant", "learning rate over the run: constant, or cosine "
                                                     "decay to 0", flag="--schedule")
    warmup_epochs: int = option(0, "linear learning-rate warm-up over this many epochs", flag="--warmup-epochs",
                                metavar="N")
    hflip: Literal["auto", True, False] = option(
        "auto", "augmentation: flip each training image left-right with probability 1/2; auto: where the data says "
        "its mirror images are images of the same kind (the Olivetti faces: on; a folder or array: off)",
        flag="--hflip")
    shift: int = option(0, "augmentation: move each training image by up to this many pixels along each axis "
                        "(edges repeated)", flag="--shift", metavar="PIXELS")
    rotate: float = option(0.0, "augmentation: rotate each training image by a random angle of up to this many "
                           "degrees (and zoom it, train.zoom; edges mirrored)", flag="--rotate", metavar="DEGREES", legacy=0.0, since="2026-12-02T03:19")
    zoom: float = option(0.0, "augmentation: scale each training image by a random factor between 1/(1 + ZOOM) and "
                         "1 + ZOOM", flag="--zoom", metavar="ZOOM", legacy=0.0, since="2026-12-02T03:19")
    intensity: float = option(0.0, "augmentation: a random gamma (exp of up to +-F) and contrast (1 +- F) for each "
                              "training image", flag="--intensity", metavar="F", legacy=0.0, since="2026-12-02T03:19")
    synthetic: float = option(0.0, "augmentation: replace this fraction of each training batch by synthetic dead-leaves "
                              "images (discs of every size: images in general)", flag="--synthetic", metavar="F", legacy=0.0, since="2026-12-03T16:31")
    crop: int = option(0, "train on a random PIXELS x PIXELS window of each (augmented, corrupted) image, for models "
                       "that run at any size (patches: cheaper steps); 0: whole images", flag="--crop", metavar="PIXELS", legacy=0, since="2026-12-02T15:05")
    ema: float = option(0.0, "weight averaging: validate, select and keep an exponential moving average of the "
                        "weights with this decay per step (e.g. 0.999); 0: off, the weights of the last step",
                        flag="--ema", metavar="DECAY", legacy=0.0, since="2026-12-02T03:19")
    max_minutes: float = option(0.0, "stop cleanly (with a checkpoint) after this many minutes of training; 0: no "
                                "limit", flag="--max-time", metavar="MINUTES", resume=True)
    select: bool = option(True, "model selection: carve a validation split out of the training images (whole "
                          "labels where the data has them), score the start and every epoch on it, end with the "
                          "best weights, stop when it stops improving; off: train every epoch on every training "
                          "image and keep the last weights (the reference)", flag="--select", legacy=False, since="2026-12-02T00:19")
    val_fraction: float = option(0.1, "train.select: the fraction of the training images (or of their labels) "
                                 "held out for validation", flag="--val-fraction", metavar="F", legacy=0.1, since="2026-12-02T00:19")
    early_stop: int = option(20, "train.select: stop when the validation loss has not improved for this many epochs; "
                             "0: never", flag="--early-stop", metavar="PATIENCE")
    checkpoint_every: int = option(0, "also keep a checkpoint every N epochs (besides 'last' and 'best', which are "
                                   "always kept)", flag="--checkpoint-every", metavar="N")
    compare: bool = option(True, "end the run with aekit evaluate on the held-out images beside what a user would "
                           "pick instead (PCA of the same code length; the classical denoisers for a denoising run): "
                           "evaluation.json, metrics.json and the summary lead with the comparison", flag="--compare", legacy=False, since="2026-12-02T00:19")
    checkpoint_seconds: float = option(60.0, "write 'last' after the first epoch, then at most this often (0: every "
                                       "epoch); a new 'best' is 'last' too")
    amp: Literal["auto", "off", "bf16", "fp16"] = option(
        "auto", "mixed precision: autocast the forward pass and loss to bf16 or fp16 (fp16 adds a GradScaler; weights "
        "stay float32); auto: bf16 on CPUs that run it natively (AVX512-BF16 or AMX), float32 elsewhere, GPUs included "
        "(bf16 measured slower on an H200); the choice is printed and written to config.toml", flag="--amp")
    compile: bool = option(False, "train through torch.compile(model): same math, a slower first epoch; measure it",
                           flag="--compile", resume=True)
    data_init: bool = option(False, "before the first step, let the model calibrate its code layer on training "
                             "images (conv: each code unit starts with zero mean and unit spread across images)",
                             flag="--data-init")
    init_from: str | None = option(None, "start from the weights of a trained run or model folder (fine-tuning): the model is its "
                       "architecture and [model] settings, the start its weights; model selection scores that start "
                       "first", flag="--init-from", metavar="RUN")


@dataclass
class Config:
    name: str = option("aekit", "run name (default folder: runs/NAME-TIMESTAMP)", flag="--name", metavar="NAME")
    seed: int = option(1000, "fixes initialisation, shuffling and noise (the data order: data.order_seed)",
                       flag="--seed", metavar="N")
    data: DataConfig = option(factory=DataConfig, help="[data] table")
    model: ModelConfig = option(factory=lambda: build_model_config({}), help="[model] table")
    train: TrainConfig = option(factory=TrainConfig, help="[train] table")
    noise: NoiseConfig = option(factory=NoiseConfig, help="[noise] table: corruption of the model's input "
                                "(denoising), e.g. gaussian:0.2", flag="--noise", metavar="SPEC", parse=parse_noise)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "config") -> "Config":
        raw, at = dict(raw), (lambda t: t) if where == OPTIONS else (lambda t: f"{where}: [{t}]")
        tables = {k: build(sub, raw.pop(k, {}), at(k)) for k, sub in (("data", DataConfig), ("noise", NoiseConfig))}
        model, size = raw.pop("model", {}), tables["data"].size
        if size and isinstance(model, dict) and "input_size" not in model:  # data.size sets both, as --size does
            model = {**model, "input_size": list(size)}
        tables["model"] = build_model_config(model, at("model"))
        train = raw.pop("train", {})  # the architecture's own training defaults, where the table is silent
        train = {**model_class(tables["model"].name).train_defaults, **train} if isinstance(train, dict) else train
        tables["train"] = build(TrainConfig, train, at("train"))
        top = build(_TopLevel, raw, where, tables=("data", "model", "train", "noise"))
        cfg = cls(name=top.name, seed=top.seed, **tables)
        validate(cfg, where)
        return cfg


@dataclass
class _TopLevel:  # the keys of a config file outside its tables (Config's, whose defaults they take)
    name: str = Config.name
    seed: int = Config.seed


def config_options() -> list[Option]:
    """Every documented field of a run's configuration, by dotted key (``name``, ``data.source``,
    ``model.beta`` ...); the [model] table's from every registered architecture (the first declaration
    of a name wins, so the fields every model has come from ModelConfig), [noise] as one option."""
    out: list[Option] = []
    for top in options(Config):
        if top.key in ("data", "train"):
            out += options(top.type, f"{top.key}.")
        elif top.key == "model":
            found: dict[str, Option] = {}
            for cls in (ModelConfig, *(config_class(n) for n in list_models())):
                found.update({o.key: o for o in options(cls, "model.") if o.key not in found})
            out += found.values()
        else:
            out.append(top)
    return out


AUTO_KEYS = ("train.amp", "train.hflip")  # settings whose "auto" a run resolves (and writes down) before it trains


def resumable_keys() -> set[str]:
    """The settings a resumed run may change (the fields declared with ``resume=True``)."""
    return {o.key for o in config_options() if o.resume}


def replace(cfg: Config, **overrides: Any) -> Config:
    """A copy of ``cfg`` with dotted overrides, e.g. ``replace(cfg, **{"train.epochs": 5})``; None values
    are ignored. A new ``model.name`` starts that architecture from its defaults, keeping the fields
    every model has."""
    raw, size = cfg.to_dict(), overrides.get("data.size")
    if size is not None:  # sets both, as --size does
        overrides = {"model.input_size": parse_size(size) if isinstance(size, str) else size, **overrides}
    new_model = overrides.get("model.name")
    if new_model is not None and new_model != cfg.model.name:  # keep the shared fields set away from the defaults
        old = to_plain(dataclasses.asdict(config_class(cfg.model.name)()))
        shared = {f.name for f in dataclasses.fields(ModelConfig)} - {"name"}
        raw["model"] = {"name": new_model, **{k: v for k, v in raw["model"].items() if k in shared and v != old[k]}}
        # training settings left at the old architecture's defaults take the new one's
        before = {**to_plain(dataclasses.asdict(TrainConfig())), **model_class(cfg.model.name).train_defaults}
        raw["train"] = {k: v for k, v in raw["train"].items() if v != before.get(k)}
    for dotted, value in ((k, v) for k, v in overrides.items() if v is not None):  # None: not given
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        spec = dotted == "noise" and isinstance(value, str)  # a SPEC, "gaussian:0.2": where the config adds noise kept
        node[leaf] = to_plain(dataclasses.replace(parse_noise(value), where=cfg.noise.where) if spec else value)
    try:
        return Config.from_dict(raw, where=OPTIONS)
    except ConfigError as e:  # about a key: name it, so that the command line shows its flag
        if e.keys or not (key := re.match(r"(data|model|noise|train)\.\w+", str(e))):
            raise
        raise ConfigError(str(e), keys=key[0]) from None


def validate(cfg: Config, where: str = "config") -> None:
    """Impossible values raise a ConfigError naming the key (and the file, unless ``where`` is OPTIONS)."""
    t, d, m, at = cfg.train, cfg.data, cfg.model, "" if where == OPTIONS else f"{where}: "

    def need(ok: bool, key: str, msg: str, *also: str) -> None:  # also: other keys the message names
        if not ok:  # from the command line, the key is shown as its flag (errors.AekitError.keys)
            raise ConfigError(f"{at}{key} {msg}", keys=(key, *also) if where == OPTIONS else ())

    need(not seed_problem(cfg.seed), "seed", seed_problem(cfg.seed) or "")
    need(t.epochs >= 1, "train.epochs", f"must be at least 1, got {t.epochs}")
    need(t.batch_size >= 1, "train.batch_size", f"must be at least 1, got {t.batch_size}")
    need(t.lr >= 0, "train.lr", f"must be 0 or more (0: the start is kept), got {t.lr}")
    need(0 <= t.beta1 < 1 and 0 <= t.beta2 < 1, "train.beta1/beta2", "must lie in [0, 1)")
    need(t.eps > 0, "train.eps", f"must be positive, got {t.eps}")
    for key in ("eval_every", "threads", "warmup_epochs", "max_minutes", "early_stop", "checkpoint_every",
                "checkpoint_seconds"):
        need(getattr(t, key) >= 0, f"train.{key}", f"must be 0 or more, got {getattr(t, key)}")
    need(t.shift >= 0, "train.shift", f"must be 0 or more pixels, got {t.shift}")
    need(t.crop >= 0, "train.crop", f"must be 0 or more pixels, got {t.crop}")
    need(0 <= t.rotate <= 180, "train.rotate", f"must lie in [0, 180] degrees, got {t.rotate}")
    for key in ("zoom", "intensity", "synthetic"):
        need(0 <= getattr(t, key) < 1, f"train.{key}", f"must lie in [0, 1), got {getattr(t, key)}")
    any_size = [n for n in list_models() if model_class(n).any_size]
    need(not t.crop or m.name in any_size, "train.crop", f"needs a model for any size ({', '.join(any_size)}), not {m.name}")
    need(0 <= t.ema < 1, "train.ema", f"must lie in [0, 1) (e.g. 0.999; 0: off), got {t.ema}")
    need(0 <= d.test_fraction < 1, "data.test_fraction", f"must lie in [0, 1), got {d.test_fraction}")
    need(0 < t.val_fraction < 1, "train.val_fraction", f"must lie in (0, 1), got {t.val_fraction}")
    need(d.size is None or not size_problem(d.size), "data.size", d.size and size_problem(d.size))
    need(d.workers is None or d.workers >= 0, "data.workers", f"must be 0 or more, got {d.workers}")
    need(d.fit != "tiles" or d.size, "data.fit", "tiles cuts windows of the working size: give data.size", "data.size")
    for key, why in m.common_problems():
        need(False, key, why)
    if problem := cfg.noise.check():
        raise ConfigError(f"{at}[noise] {problem}")
    if problem := m.check():  # a size rule broken by data.size (--size) names it
        need(not (d.size and problem.startswith("model.input_size ")), "data.size", problem[17:])
        raise ConfigError(f"{at}{problem}")


def working_size(cfg: Config) -> tuple[int, int]:
    """The size images are fitted to: data.size, which must equal the model's input size."""
    size = tuple(cfg.data.size or cfg.model.input_size)
    if size != tuple(cfg.model.input_size):
        raise ConfigError(f"data.size {size[0]}x{size[1]} differs from model.input_size {cfg.model.input_size[0]}x"
                          f"{cfg.model.input_size[1]}: give both the same size (--size sets both)")
    return size


def load_from_config(data: DataConfig, *, size: tuple[int, int] | None = None, decode: bool = True) -> ImageData:
    """:func:`aekit.load_data` with a configuration's ``[data]`` options; ``size`` defaults to ``data.size``
    (``decode``: see there)."""
    return load_data(
        data.source, seed=data.order_seed, data_home=data.data_home, size=size or data.size, fit=data.fit,
        method=data.resize, channels=data.channels, layout=data.layout, rescale=data.rescale,
        skip_bad=data.skip_bad, stream=data.stream, workers=data.workers, decode=decode,
    )
