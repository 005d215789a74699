"""A run that starts from a trained model's weights (``train.init_from``: fine-tuning).

The model is the trained one: its ``[model]`` table replaces the run's (its architecture's training defaults
follow, as with ``--model``), and where the run leaves them to the data, the images are read with its number
of channels and, for a model of one size, at its working size. Its weights are the start, which model selection
scores as its first candidate, so a fine-tuned model never ends below it on the validation images. A model that
starts from the data (the hybrid's PCA, ``train.data_init``) starts from the trained weights instead. The run's
config.toml records the folder; a resume continues from the run's own checkpoints and never reads it again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .config import Config, replace
from .config_file import load_config
from .data import absolute_source, split_indices
from .errors import AekitError
from .files import user_path
from .models import ModelConfig, build_model_config, config_class, model_class
from .models.io import MODEL_JSON, MODEL_WEIGHTS, check_weights_file, read_model_json, read_preprocess, weights_problem
from .models.registry import meta_model

DATA_DECIDES = ("name", "in_channels", "input_size")  # [model] keys the init and the data set, never the user's


def with_init(cfg: Config) -> tuple[Config, str]:
    """``cfg`` with the model of ``train.init_from`` (see the module's docstring), and a line saying so; a choice of the
    user's that the trained model contradicts (another [model] value, channels, a size) is an error naming both."""
    folder, trained, size = _trained(cfg.train.init_from)
    if clash := _clash(cfg.model, trained):
        raise AekitError(f"train.init_from {folder}: its model has {clash}: the model is the trained one's "
                         f"(leave the [model] setting out)", keys="train.init_from")
    d = cfg.data
    if d.channels not in ("auto", trained.in_channels):
        raise AekitError(f"train.init_from {folder}: its model takes {trained.in_channels}-channel images, not data.channels "
                         f"{d.channels} (leave data.channels auto)", keys=("train.init_from", "data.channels"))
    fixed = not model_class(trained.name).any_size
    if fixed and d.size is not None and tuple(d.size) != tuple(trained.input_size):
        h, w = trained.input_size
        raise AekitError(f"train.init_from {folder}: its {trained.name} model works at {h}x{w} only, not data.size "
                         f"{d.size[0]}x{d.size[1]} (leave data.size out)", keys=("train.init_from", "data.size"))
    if cfg.train.data_init:
        raise AekitError("train.data_init recalibrates the start, and with train.init_from the start is the trained "
                         "weights: give one of them", keys=("train.data_init", "train.init_from"))
    cfg = replace(cfg, **{"model.name": trained.name})  # the architecture's training defaults follow, as with --model
    mine = {"data.channels": trained.in_channels, "train.init_from": str(folder),
            **({"data.size": d.size or size or trained.input_size} if fixed else {}),
            **{f"model.{f.name}": getattr(trained, f.name) for f in dataclasses.fields(trained)
               if f.name not in DATA_DECIDES}}
    return replace(cfg, **mine), f"Start: the weights of {folder} (train.init_from), a {trained.name} model"


def check_given(init: str, given: dict) -> None:
    """The [model] options the user gave (``given``: the command line's, by dotted key) are the trained model's in
    folder ``init``, defaults included (:func:`with_init` can tell a choice only where it is not a default)."""
    folder, trained, _ = _trained(init)
    for key, value in given.items():
        name = key.removeprefix("model.")
        if key.startswith("model.") and name not in DATA_DECIDES[1:] and getattr(trained, name, None) != value:
            raise AekitError(f"train.init_from {folder}: its model has {key} {getattr(trained, name, None)}, not {value}: "
                             f"the model is the trained one's (leave {key} out)", keys=("train.init_from", key))


def architecture(init: str) -> str:
    """The architecture of the trained model in folder ``init`` (the command line builds its options for it)."""
    return _trained(init)[1].name


def _trained(init: str) -> tuple[Path, ModelConfig, list | None]:
    """The folder ``init`` (absolute), the [model] table of the model in it and the size it was trained at; its
    model.json checked against its weights' header before any memory is taken for them."""
    folder = Path(user_path(init)).absolute()
    try:
        meta = read_model_json(folder)
        try:
            shell = meta_model(build_model_config(meta.get("config"), where="config"))
            size = read_preprocess(meta, shell.config).get("size")
        except AekitError as e:
            raise AekitError(f"{folder / MODEL_JSON}: {e}") from None
        check_weights_file(folder, shell, meta.get("config"))
        return folder, shell.config, size
    except AekitError as e:
        raise AekitError(f"train.init_from {e}", keys="train.init_from") from None


def _clash(mine: ModelConfig, trained: ModelConfig) -> str | None:
    """The first [model] value the user chose (one away from its architecture's default) that the trained model
    does not have, in words; None when there is none."""
    if mine.name != trained.name and mine.name != ModelConfig().name:
        return f"model.name {trained.name}, not {mine.name}"
    if mine.name != trained.name:
        return None  # the default architecture, not a choice: its values are defaults too
    default = config_class(mine.name)()
    for f in dataclasses.fields(mine):
        ours, theirs = getattr(mine, f.name), getattr(trained, f.name)
        if f.name not in DATA_DECIDES and ours != getattr(default, f.name) and ours != theirs:
            return f"model.{f.name} {theirs}, not {ours}"
    return None


def load_init(model: torch.nn.Module, init: str) -> None:
    """The weights of the trained model in folder ``init`` into ``model`` (built from its [model] table)."""
    path = Path(init) / MODEL_WEIGHTS
    try:
        weights = load_file(str(path), device="cpu")
    except (FileNotFoundError, SafetensorError, OSError) as e:
        raise AekitError(f"train.init_from {path}: cannot read the weights ({e})", keys="train.init_from") from None
    if problem := weights_problem(model, weights):
        raise AekitError(f"train.init_from {path}: the weights are not of the model its model.json describes ({problem})",
                         keys="train.init_from")
    model.load_state_dict(weights)


def notes(cfg: Config, data) -> list[str]:
    """What the user should know of the run ``train.init_from`` names (``data``: this run's RunData): that it denoised and
    this run adds no noise; that held-out images of this run were its training or validation images (the same
    source: known by name). None for a model folder, or a run whose config.toml cannot be read."""
    folder = Path(cfg.train.init_from)
    if not (folder / "config.toml").is_file():
        return []
    try:
        theirs = load_config(folder / "config.toml")
    except AekitError:
        return []
    out = []
    if theirs.noise.kind != "none" and cfg.noise.kind == "none":
        out.append(f"note: {folder} (train.init_from) was trained to denoise (noise {theirs.noise.spec()}), and this run "
                   f"adds no noise: it trains the model to reconstruct clean images (give noise "
                   f"{theirs.noise.spec()}, --noise on the command line, to fine-tune the denoiser)")
    return out + [n for n in [_seen(cfg, theirs, data, folder)] if n]


def _seen(cfg: Config, theirs: Config, data, folder: Path) -> str | None:
    if not data.test_index:
        return None
    if absolute_source(theirs.data.source) != absolute_source(cfg.data.source):
        return None
    if theirs.data.split == "random" and theirs.data.order_seed != cfg.data.order_seed:
        return (f"note: {folder} (train.init_from) split the same images with data.order_seed {theirs.data.order_seed}: "
                f"held-out images of this run are likely among those it trained on (give the same data.order_seed, "
                f"{theirs.data.order_seed}, for held-out figures of images neither model saw)")
    try:
        trained_on, _ = split_indices(data.data, split=theirs.data.split, test_fraction=theirs.data.test_fraction)
    except AekitError:
        return None
    seen = len(set(data.test_index) & {int(i) for i in trained_on})
    if not seen:
        return None
    everything = theirs.data.split == "random" and theirs.data.test_fraction == 0
    fix = ("it trained on every one: aekit evaluate RUN --data scores the run on other images" if everything else
           f"give data.split {theirs.data.split} and data.test_fraction {theirs.data.test_fraction}, as it had")
    return (f"note: {seen} of the {len(data.test_index)} held-out images were training images of {folder} "
            f"(train.init_from): the held-out figures are not of unseen images ({fix})")
