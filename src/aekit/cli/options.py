"""Command-line options generated from the configuration's fields, and the parser's shared pieces.

Every config field declared with a ``flag`` (:func:`aekit.typed.option`) becomes one option of
``aekit train``: its help is the field's help plus the default, its choices come from the field's
``Literal`` type, a ``bool`` becomes ``--flag/--no-flag``. The option's destination is the field's
dotted key (``train.epochs``), so a library error naming that key can be shown with the flag.
Values are checked after parsing, by the same rules as a config file, so a bad value is one line
naming the flag (with a suggestion for a misspelt choice).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import textwrap
import types
import typing
from typing import Any

from ..config import Config, config_options, replace
from ..config_file import load_config
from ..data import SUBJECT_TEST_FRACTION, parse_size, size_problem
from ..data.sources import ARRAY_SUFFIXES, BUILT_IN
from ..errors import AekitError, ConfigError
from ..files import user_path
from ..models import config_class, list_models, model_class
from ..noise import GRAMMAR
from ..typed import Option, choices, coerce


def examples(text: str) -> str:
    return "examples:\n" + textwrap.indent(textwrap.dedent(text).strip(), "  ")


def default_of(func, name: str) -> Any:
    """The default of parameter ``name`` of the library function ``func``: the option that passes it shows and
    uses that value (one home for it)."""
    return inspect.signature(func).parameters[name].default


def add_command(sub, name: str, help: str, examples_text: str, func, description: str | None = None):
    """A subcommand with a description, examples and the function that runs it."""
    p = sub.add_parser(name, help=help, description=description or help[0].upper() + help[1:] + ".",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=examples(examples_text))
    p.set_defaults(func=func)
    return p


def add_no_progress(p: argparse.ArgumentParser, what: str) -> None:
    """--no-progress: no bar on a terminal (there is none where stderr is not one)."""
    p.add_argument("--no-progress", action="store_true", help=f"no progress bar{what} (none shows when stderr is not "
                   "a terminal, e.g. redirected to a log file)")


def flagged() -> list[Option]:
    """The config fields that have a command-line flag."""
    return [o for o in config_options() if o.flag]


def _plain_type(tp: Any) -> Any:
    """int for ``int | None``, and so on."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and args else tp


def _literal_converter(values: tuple):
    def convert(text: str):
        return next((v for v in values if str(v) == text), text)  # unknown: checked (with a suggestion) later

    convert.__name__ = "choice"
    return convert


def _help(o: Option) -> str:
    default = o.default
    if o.key == "noise":  # SPEC's grammar, generated from the noise table
        return f"{o.help}; SPEC: {GRAMMAR} (default: none)"
    if default is None:
        return o.help
    if o.key.startswith("model.") and o.key != "model.name":  # each architecture's own default
        field = o.key.split(".", 1)[1]
        own = {n: f.default for n in list_models() for f in dataclasses.fields(config_class(n)) if f.name == field}
        if len(set(own.values())) == 1:
            return f"{o.help} (default: {default}{'' if len(own) == len(list_models()) else '; ' + ', '.join(own)})"
        return f"{o.help} (default: the model's: {', '.join(f'{n} {v}' for n, v in own.items())})"
    if o.key.startswith("train."):  # an architecture's training defaults (models.base: train_defaults)
        field = o.key.split(".", 1)[1]
        own = [f"{n} {model_class(n).train_defaults[field]}" for n in list_models()
               if model_class(n).train_defaults.get(field, default) != default]
        return f"{o.help} (default: {default}{''.join('; ' + x for x in own)})"
    return f"{o.help} (default: {default})"


GROUPS = {"data.": "data options ([data])", "model.": "model options ([model])", "train.": "training options ([train])"}


def add_config_options(parser: argparse.ArgumentParser, keys: set[str] | None = None) -> None:
    """One option per flagged config field (only those in ``keys`` when given), grouped by table;
    destination: the dotted key."""
    groups = {prefix: parser.add_argument_group(title) for prefix, title in GROUPS.items()}
    for o in flagged():
        if keys is not None and o.key not in keys:
            continue
        kwargs: dict[str, Any] = {"dest": o.key, "default": None, "help": _help(o)}
        tp = _plain_type(o.type)
        values = choices(o.type)
        if o.meta("parse") is not None:
            kwargs.update(metavar=o.meta("metavar") or "VALUE")
        elif tp is bool or (values is not None and set(values) == {"auto", True, False}):
            kwargs.update(action=argparse.BooleanOptionalAction)
        elif values is not None:
            kwargs.update(type=_literal_converter(values), metavar="{" + ",".join(map(str, values)) + "}")
        else:
            kwargs.update(type=tp if tp in (int, float) else str, metavar=o.meta("metavar"))
        group = next((g for prefix, g in groups.items() if o.key.startswith(prefix)), parser)
        group.add_argument(o.flag, **kwargs)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """{dotted key: value} of the config options given on the command line, parsed and checked."""
    out = {}
    for o in flagged():
        raw = getattr(args, o.key, None)
        if raw is None:
            continue
        try:
            value = o.meta("parse")(raw) if o.meta("parse") is not None else raw
            if o.key != "noise":
                value = coerce(value, o.type, o.key)
        except AekitError as e:
            raise type(e)(str(e), keys=o.key) from None
        except ValueError as e:
            raise ConfigError(f"{o.key}: {e}", keys=o.key) from None
        out[o.key] = value
        for also in o.meta("also", ()):
            out[also] = value
    return out


def config_from_args(args: argparse.Namespace) -> Config:
    """The run's configuration: the config file (or the defaults), then the options on top."""
    cfg = load_config(args.config) if getattr(args, "config", None) else Config()
    given = given_options(args)
    cfg = replace(cfg, **{"model.name": given.pop("model.name", None)})  # another model: its own defaults
    model_fields = set(typing.get_type_hints(config_class(cfg.model.name)))
    for key in given:
        if key.startswith("model.") and key[6:] not in model_fields:
            owners = [n for n in list_models() if key[6:] in typing.get_type_hints(config_class(n))]
            raise ConfigError(f"{key}: the {cfg.model.name} model has no {key[6:]} (a setting of "
                              f"{', '.join(owners)}: choose one with model.name)", keys=(key, "model.name"))
    noise = given.pop("noise", None)
    if noise is not None:
        raw = cfg.to_dict()
        raw["noise"] = {**dataclasses.asdict(noise), "where": cfg.noise.where}  # SPEC has no where: the file's
        cfg = Config.from_dict(raw, where="noise")
    cfg = replace(cfg, **given)
    if "data.test_fraction" in given and cfg.data.split == "subject":  # else config.toml would record a split not made
        raise ConfigError("data.test_fraction applies to the random split; data.split subject holds out the last "
                          f"{SUBJECT_TEST_FRACTION:.0%} of the labels (people)", keys=("data.test_fraction", "data.split"))
    for key, why in idle_options(cfg):
        if key in given:
            raise ConfigError(f"{key} {why}", keys=key)
    return cfg


def idle_options(cfg: Config):
    """(key, why) for the options that would change nothing with the rest of ``cfg``: given on the
    command line, they are refused rather than silently ignored."""
    t, d = cfg.train, cfg.data
    if not t.select:
        why = "has no effect without model selection (--no-select carves out no validation split); drop one"
        yield from ((k, why) for k in ("train.val_fraction", "train.early_stop"))
    builtin, array = d.source in BUILT_IN, str(d.source).lower().endswith(ARRAY_SUFFIXES)
    if builtin or array:
        why = f"applies to a folder of images, not {d.source}; drop it"
        yield from ((k, why) for k in ("data.skip_bad", "data.workers"))
    if builtin or os.path.isdir(user_path(d.source)):
        why = f"applies to an array (.npy or .npz), not {d.source}; drop it"
        yield from ((k, why) for k in ("data.layout", "data.rescale"))
    if t.crop and d.size and t.crop >= max(d.size):
        yield "train.crop", (f"{t.crop} is not below the working size {d.size[0]}x{d.size[1]}: every image would be "
                             "kept whole; give a smaller window or none")
    if t.warmup_epochs >= t.epochs:
        yield "train.warmup_epochs", (f"{t.warmup_epochs} is not below the {t.epochs} epochs: the learning rate would "
                                      "never reach its peak; give fewer")


def size_arg(args: argparse.Namespace) -> tuple[int, int] | None:
    """A command's ``--size HxW`` (dest ``data.size``) as (height, width), or None; a bad one is one line."""
    text = getattr(args, "data.size")
    if text is None:
        return None
    try:
        size = parse_size(text)
    except ValueError as e:
        raise ConfigError(f"data.size: {e}", keys="data.size") from None
    if size_problem(size):
        raise ConfigError(f"data.size {size_problem(size)}", keys="data.size")
    return size
