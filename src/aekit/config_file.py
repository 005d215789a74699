"""A configuration as a TOML file: reading one (errors name the file and the key) and writing one.

A user's config file may leave out any key or table (its default). A run folder's own config.toml holds every table
and every key its run wrote (all but those whose value is None, which TOML cannot hold): a key deleted there would
read as its default, perhaps not what the run used (another split, size or noise, so that images it trained on
are scored as held out), so it is an error naming the keys. A key added to aekit after the run was written is not
there either: it reads as what the run did before the key existed (its option's ``legacy`` value: no model
selection, noise added at the native size ...), so runs of older versions evaluate and resume as they were. A key
counts as added after the run when it came later (its option's ``since``) than the file's first line says its keys
are (``# aekit config: the keys of 2026-12-03T16:31``, written since 2026-12-05), or, in a file without that line,
than every key the run did write.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w

from . import configs
from .config import Config, replace
from .errors import ConfigError
from .models import config_class, list_models
from .typed import MISSING, drop_none, flatten, legacy


KEYS_OF = "# aekit config: the keys of {}\n"  # config.toml's first line: its keys are those of this date and before
_KEYS_OF = re.compile(r"\A# aekit config: the keys of (\S+)$", re.M)


def keys_of() -> str:
    """The newest ``since`` of any option: a configuration written now holds every key of that date and before."""
    cfg = Config()
    classes = [type(getattr(cfg, t)) for t in ("data", "train", "noise")] + [config_class(n) for n in list_models()]
    return max(f.metadata["legacy"][1] for c in classes for f in dataclasses.fields(c) if "legacy" in f.metadata)


def load_config(path: str | Path, *, run: bool = False) -> Config:
    """Read a TOML config file; errors name the file and the key (``run``: a run's config.toml, every key in it)."""
    path = configs.find(path)  # a file, or the name of a config aekit ships ("reference")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM: Notepad, Windows PowerShell 5
        raw = tomllib.loads(text)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from None
    except UnicodeDecodeError as e:  # a binary file
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {e.start}); a config file is TOML text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a config file (its arrays or tables are nested too deeply)") from None
    if run and (lost := [k for k, v in Config().to_dict().items() if isinstance(v, dict) and k not in raw]):
        raise ConfigError(f"{path}: no [{lost[0]}] table, which every run's config.toml holds (damaged? restore it)")
    cfg = Config.from_dict(raw, where=str(path))
    return check_complete(path, raw, cfg, (m := _KEYS_OF.match(text)) and m[1]) if run else cfg


def check_complete(path: Path, raw: dict, cfg: Config, era: str | None = None) -> Config:
    """``cfg``, read from ``raw`` (a run's config.toml, whose keys are those of ``era``: its first line), with the keys
    added to aekit after the run was written read as what it did then (their ``legacy`` values); an error naming every
    other key the run wrote that is missing, where its line goes and its default."""
    held, written = flatten(raw), flatten(drop_none(cfg.to_dict()))
    missing, came = [k for k in written if k not in held], {k: legacy(cfg, k) for k in written}
    if not era:  # a file from before the first line was written: as new as the newest key it holds
        era = max((came[k][1] for k in held if came.get(k, MISSING) is not MISSING), default="")
    older = {k: came[k][0] for k in missing if came[k] is not MISSING and came[k][1] > era}
    lost = [k for k in missing if k not in older]
    if not lost:
        return replace(cfg, **older) if older else cfg
    table, _, key = lost[0].rpartition(".")
    shown, where = (f"[{table}] {key}", f"in [{table}]") if table else (key, "above the tables")
    saved = "its value is under \"config\" in the run's model.json, or a checkpoint's; " if table == "model" else ""
    if len(lost) > 1:
        shown = ", ".join(f"[{k.rpartition('.')[0]}] {_name(k)}" if "." in k else k for k in lost)
        raise ConfigError(f"{path}: no {shown}, which every run's config.toml holds (their defaults, read in their "
                          "place, may not be what the run used); put back the lines the run wrote (the defaults: "
                          f"{', '.join(f'{_name(k)} = {json.dumps(written[k])}' for k in lost)})")
    raise ConfigError(f"{path}: no {shown}, which every run's config.toml holds (its default, read in its place, may "
                      f"not be what the run used); put back the line the run wrote {where} ({saved}the default: "
                      f"{key} = {json.dumps(written[lost[0]])})")


def _name(key: str) -> str:
    return key.rpartition(".")[2]


def dump_config(cfg: Config) -> str:
    """The configuration as TOML text (None values are left out: they mean 'default'), after a first line that says
    of which date its keys are (:data:`KEYS_OF`)."""
    return KEYS_OF.format(keys_of()) + tomli_w.dumps(drop_none(cfg.to_dict()))
