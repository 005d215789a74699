"""Typed configuration: dataclasses for data, model and training, read from and written to TOML.

A run is described by one :class:`Config`. TOML files hold the same tables (``[data]``,
``[model]``, ``[train]``); unknown keys, wrong types and impossible values are reported as
a :class:`~aekit.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError
from .noise import NoiseConfig

ResizeMethod = Literal["legacy-bicubic", "bicubic", "bilinear", "area", "nearest"]


@dataclass
class DataConfig:
    source: str = "olivetti"  # 'olivetti' (scikit-learn's Olivetti faces), a folder of images, or a .npy/.npz file
    order_seed: int = 1000  # fixes the data order, hence the split (Olivetti: random_state; 1000 is the reference's)
    data_home: str | None = None  # scikit-learn data folder; None: $SCIKIT_LEARN_DATA or ~/scikit_learn_data
    size: tuple[int, int] | None = None  # working size (height, width); None: the model's input size
    resize: ResizeMethod = "bicubic"  # resize to the working size; 'legacy-bicubic' is TF1's resize_images
    split: Literal["random", "subject"] = "random"  # random: last test_fraction of the seeded order; subject: unseen people
    test_fraction: float = 0.2  # held-out fraction for the random split (0 trains on everything)
    fit: Literal["resize", "crop", "pad"] = "resize"  # to the working size: stretch; fill and cut (keeps aspect); fit and pad black
    channels: Literal["auto", 1, 3] = "auto"  # auto: 1 when every image is grayscale, else 3; model.in_channels follows
    layout: Literal["auto", "nhwc", "nchw"] = "auto"  # axis order of a 4-d array; auto: the channel axis is the one of 1, 3 or 4
    rescale: bool = False  # arrays: map min..max to 0..1 instead of refusing float values outside [0, 1]
    skip_bad: bool = False  # folders: skip unreadable image files (listed in the run's skipped.txt) instead of stopping
    stream: Literal["auto", "on", "off"] = "auto"  # folders: decode from disk every epoch; auto: above 1 GiB decoded
    workers: int | None = None  # folders: DataLoader worker processes; None: one per CPU core, at most 4


@dataclass
class ModelConfig:
    """Fields every architecture has; each architecture subclasses it with its own."""

    name: str = "conv"  # registered architecture name (`aekit models` lists them)
    in_channels: int = 1  # image channels: 1 grayscale, 3 RGB
    input_size: tuple[int, int] = (32, 32)  # (height, width) the model works at
    code_length: int = 256  # length of the code (latent vector)
    loss: Literal["l2", "mse", "bce", "psnr"] = "l2"  # l2: half the summed squared error (tf.nn.l2_loss); mse; bce; psnr (minus the PSNR)
    sparsity: float = 0.0  # sparse autoencoder: adds sparsity x the L1 norm of each sample's code to its loss


@dataclass
class TrainConfig:
    epochs: int = 600  # passes over the training set
    batch_size: int = 50  # samples per optimisation step
    lr: float = 1e-3  # Adam learning rate
    beta1: float = 0.9  # Adam beta1 (TF1 default)
    beta2: float = 0.999  # Adam beta2 (TF1 default)
    eps: float = 1e-8  # Adam epsilon (TF1 default)
    reference_loop: bool = False  # reproduce the reference's range(0, N - batch, batch): skips the last batch
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    eval_every: int = 10  # held-out metrics every k epochs (and always at the end); 0: only at the end
    threads: int = 0  # torch CPU threads; 0 leaves torch's default
    tensorboard: bool = False  # also log scalars and image grids to RUN/tensorboard/ (needs the tensorboard extra)
    schedule: Literal["constant", "cosine"] = "constant"  # learning rate over the run: constant, or cosine decay to 0
    warmup_epochs: int = 0  # linear learning-rate warm-up over this many epochs
    hflip: bool = False  # augmentation: flip each training image left-right with probability 1/2
    shift: int = 0  # augmentation: move each training image by up to this many pixels along each axis (edges repeated)
    max_minutes: float = 0.0  # stop cleanly (with a checkpoint) after this many minutes of training; 0: no limit
    early_stop: int = 0  # stop when the held-out loss has not improved for this many evaluations; 0: never
    checkpoint_every: int = 0  # also keep a checkpoint every N epochs; 0: only 'last' and 'best'
    checkpoint_seconds: float = 60.0  # write the 'last' checkpoint at most this often (0: every epoch)
    amp: Literal["off", "bf16", "fp16"] = "off"  # mixed precision: autocast forward and loss (fp16 adds a GradScaler)
    compile: bool = False  # train through torch.compile(model): same math, faster steps, slower first epoch
    data_init: bool = False  # before the first step, let the model calibrate its code layer on training images


@dataclass
class Config:
    name: str = "aekit"  # run name, used for the default output folder
    seed: int = 1000  # fixes initialisation, shuffling and noise (the data order: data.order_seed)
    data: DataConfig = field(default_factory=DataConfig)  # [data] table
    model: ModelConfig = field(default_factory=lambda: build_model_config({}))  # [model] table
    train: TrainConfig = field(default_factory=TrainConfig)  # [train] table
    noise: NoiseConfig = field(default_factory=NoiseConfig)  # [noise] table: corruption of the model's input

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "config") -> "Config":
        raw = dict(raw)
        tables = {}
        for key, sub in (("data", DataConfig), ("train", TrainConfig), ("noise", NoiseConfig)):
            tables[key] = _build(sub, raw.pop(key, {}), f"{where}: [{key}]")
        tables["model"] = build_model_config(raw.pop("model", {}), f"{where}: [model]")
        top = _build(_TopLevel, raw, where)
        cfg = cls(name=top.name, seed=top.seed, **tables)
        validate(cfg, where)
        return cfg


@dataclass
class _TopLevel:
    name: str = "aekit"
    seed: int = 1000


def build_model_config(raw: dict[str, Any], where: str = "[model]") -> ModelConfig:
    """Build the config dataclass of the architecture named by ``raw['name']``."""
    from .models import registry

    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table, got {type(raw).__name__}")
    name = raw.get("name", ModelConfig.name)
    try:
        config_cls = registry.config_class(name)
    except ConfigError as e:
        raise ConfigError(f"{where}.name: {e}") from None
    return _build(config_cls, raw, where)


def load_config(path: str | Path) -> Config:
    """Read a TOML config file; errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    return Config.from_dict(raw, where=str(path))


def dump_config(cfg: Config) -> str:
    """The configuration as TOML text (None values are left out: they mean 'default')."""
    import tomli_w

    return tomli_w.dumps(_drop_none(cfg.to_dict()))


def replace(cfg: Config, **overrides: Any) -> Config:
    """A copy of ``cfg`` with dotted overrides, e.g. ``replace(cfg, **{"train.epochs": 5})``."""
    raw = cfg.to_dict()
    new_model = overrides.get("model.name")
    if new_model is not None and new_model != cfg.model.name:
        # another architecture starts from its own defaults, keeping the fields every model has
        shared = {f.name for f in dataclasses.fields(ModelConfig)} - {"name"}
        raw["model"] = {"name": new_model, **{k: v for k, v in raw["model"].items() if k in shared}}
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = _to_plain(value)
    return Config.from_dict(raw, where="options")


def validate(cfg: Config, where: str = "config") -> None:
    """Impossible values raise a ConfigError naming the key."""
    t, d, m = cfg.train, cfg.data, cfg.model

    def need(ok: bool, key: str, msg: str) -> None:
        if not ok:
            raise ConfigError(f"{where}: {key} {msg}")

    need(t.epochs >= 1, "train.epochs", f"must be at least 1, got {t.epochs}")
    need(t.batch_size >= 1, "train.batch_size", f"must be at least 1, got {t.batch_size}")
    need(t.lr > 0, "train.lr", f"must be positive, got {t.lr}")
    need(0 <= t.beta1 < 1 and 0 <= t.beta2 < 1, "train.beta1/beta2", "must lie in [0, 1)")
    need(t.eps > 0, "train.eps", f"must be positive, got {t.eps}")
    need(t.eval_every >= 0, "train.eval_every", f"must be 0 or more, got {t.eval_every}")
    need(t.threads >= 0, "train.threads", f"must be 0 or more, got {t.threads}")
    need(t.warmup_epochs >= 0, "train.warmup_epochs", f"must be 0 or more, got {t.warmup_epochs}")
    need(t.shift >= 0, "train.shift", f"must be 0 or more pixels, got {t.shift}")
    need(t.max_minutes >= 0, "train.max_minutes", f"must be 0 or more, got {t.max_minutes}")
    need(t.early_stop >= 0, "train.early_stop", f"must be 0 or more, got {t.early_stop}")
    need(t.checkpoint_every >= 0, "train.checkpoint_every", f"must be 0 or more, got {t.checkpoint_every}")
    need(t.checkpoint_seconds >= 0, "train.checkpoint_seconds", f"must be 0 or more, got {t.checkpoint_seconds}")
    need(0 <= d.test_fraction < 1, "data.test_fraction", f"must lie in [0, 1), got {d.test_fraction}")
    if d.size is not None:
        need(min(d.size) >= 1, "data.size", f"must be positive, got {d.size}")
    need(not isinstance(d.channels, bool), "data.channels", f"must be 'auto', 1 or 3, got {d.channels!r}")
    if d.workers is not None:
        need(d.workers >= 0, "data.workers", f"must be 0 or more, got {d.workers}")
    need(m.in_channels in (1, 3), "model.in_channels", f"must be 1 or 3, got {m.in_channels}")
    need(m.code_length >= 1, "model.code_length", f"must be at least 1, got {m.code_length}")
    need(min(m.input_size) >= 1, "model.input_size", f"must be positive, got {m.input_size}")
    need(m.sparsity >= 0, "model.sparsity", f"must be 0 or more, got {m.sparsity}")
    problem = cfg.noise.check()
    if problem:
        raise ConfigError(f"{where}: [noise] {problem}")
    check = getattr(type(m), "check", None)
    if check is not None:
        problem = check(m)
        if problem:
            raise ConfigError(f"{where}: {problem}")


# --- generic dataclass <-> plain data, with type checking ---------------------------------

def _build(cls: type, raw: dict[str, Any], where: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    values = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in raw.items()}
    return cls(**values)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    return obj
