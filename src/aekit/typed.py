"""Typed settings: dataclass fields that carry their own documentation, and plain data <-> dataclasses.

Every configuration field is declared once, with :func:`option`::

    epochs: int = option(600, "passes over the training set", flag="--epochs", metavar="N", resume=True)

The field holds its default and one line of help; ``flag`` puts it on the command line (the
``aekit train`` parser is generated from the fields), ``resume=True`` lets a resumed run change it,
``also`` names further keys the flag sets, ``parse`` turns the flag's text into the value, ``legacy`` is what a
run written before the field existed did and ``since`` when it came (a run's config.toml without the key reads it so,
if the run is older: :func:`legacy`). The TOML reader (:func:`build`), the CLI and the documentation all read these
fields.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Callable, Iterable, Iterator, Literal

from .errors import ConfigError, did_you_mean


def option(default: Any = MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,
           flag: str | None = None, metavar: str | None = None, resume: bool = False,
           also: tuple[str, ...] = (), parse: Callable[[str], Any] | None = None, legacy: Any = MISSING,
           since: str = "") -> Any:
    """A dataclass field with its documentation (see the module's docstring)."""
    meta = {"help": help, "flag": flag, "metavar": metavar, "resume": resume, "also": tuple(also), "parse": parse}
    if legacy is not MISSING:
        assert since, "a legacy value says since when the field exists"
        meta["legacy"] = (legacy, since)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Option:
    """One documented field, with its dotted key (e.g. ``train.epochs``)."""

    key: str
    field: dataclasses.Field
    type: Any

    @property
    def help(self) -> str:
        return self.field.metadata.get("help", "")

    @property
    def flag(self) -> str | None:
        return self.field.metadata.get("flag")

    @property
    def resume(self) -> bool:
        return bool(self.field.metadata.get("resume"))

    @property
    def default(self) -> Any:
        f = self.field
        return f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default

    def meta(self, name: str, default: Any = None) -> Any:
        return self.field.metadata.get(name, default)


def options(cls: type, prefix: str = "") -> Iterator[Option]:
    """The documented fields of a dataclass, nested tables included (``prefix`` + name)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        yield Option(prefix + f.name, f, tp)


def legacy(obj: Any, dotted: str) -> Any:
    """(``legacy``, ``since``) of the field at ``dotted`` ("train.select") in the dataclass ``obj``: what a run written
    before the field existed did, and when it came ("2026-12-02T00:19"); MISSING where it was there from the start."""
    *tables, name = dotted.split(".")
    for table in tables:
        obj = getattr(obj, table, None)
    fields = dataclasses.fields(obj) if dataclasses.is_dataclass(obj) else ()
    return next((f.metadata.get("legacy", MISSING) for f in fields if f.name == name), MISSING)


def choices(tp: Any) -> tuple | None:
    """The allowed values of a ``Literal`` type (or ``Literal | None``), else None."""
    tp = _strip_none(tp)
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else None


def _strip_none(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return inner[0] if len(inner) == 1 else tp
    return tp


def build(cls: type, raw: dict[str, Any], where: str, *, tables: Iterable[str] = ()):
    """An instance of the dataclass ``cls`` from plain data; wrong keys, types and values name the key.
    ``tables``: the tables beside these keys (a file's top level), suggested for an unknown key too."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        listed = ", ".join(sorted(known)) + "".join(f", [{t}]" for t in sorted(tables))
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], known | set(tables))} "
                          f"(known: {listed})")
    parsers = {f.name: f.metadata.get("parse") for f in dataclasses.fields(cls)}
    values = {k: coerce(_parsed(v, parsers[k], f"{where}.{k}"), hints[k], f"{where}.{k}") for k, v in raw.items()}
    return cls(**values)


def _parsed(value: Any, parse: Callable[[str], Any] | None, key: str) -> Any:
    """A value in the text form its flag takes (e.g. size = "64x48"), read as the flag reads it."""
    if parse is None or not isinstance(value, str):
        return value
    try:
        return parse(value)
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from None


def coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against the type ``tp`` (ints become floats where a float is due)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], key)
    if origin is Literal:
        if value not in args or (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            raise ConfigError(
                f"{key}: {value!r} is not one of {', '.join(map(repr, args))}{did_you_mean(value, args)}"
            )
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(coerce(v, a, key) for v, a in zip(value, args))
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:  # numbers.Integral: NumPy's integers too (a grid search over np.arange)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def form_problem(value: Any, form: Any, where: str = "") -> str | None:
    """How plain data (JSON) differs from ``form``, or None. A form is a type (``numbers.Real``: a number, not a bool;
    ``object``: any value) or a table of forms by key, where a key ending in "?" may be absent or null."""
    if isinstance(form, dict):
        if not isinstance(value, dict):
            return f"{where} is {_shown(value)}, not a table"
        for key, inner in form.items():
            name = key.rstrip("?")
            at = f"{where}.{name}" if where else name
            if value.get(name) is None:
                if key.endswith("?"):
                    continue
                return f"{at} is null" if name in value else f"no {at}"
            if problem := form_problem(value[name], inner, at):
                return problem
        return None
    if not isinstance(value, form) or (isinstance(value, bool) and form not in (bool, object)):  # True is an int
        return f"{where} is {_shown(value)}, not {_KINDS.get(form, f'a {form.__name__}')}"
    return None


_KINDS = {numbers.Real: "a number", str: "a string", bool: "true or false"}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"a {type(value).__name__}"


def to_plain(obj: Any) -> Any:
    """Dataclasses, tuples and dicts as plain dicts and lists (for TOML and JSON)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: drop_none(v) for k, v in obj.items() if v is not None}
    return obj


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested tables as one dict of dotted keys: {"train": {"epochs": 3}} -> {"train.epochs": 3}."""
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat
