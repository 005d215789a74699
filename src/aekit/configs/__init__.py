"""The configs aekit ships: the book's reference experiments and a faster variant, as TOML files.

``aekit train --config reference`` and ``aekit.load_config("reference")`` read ``reference.toml`` from
here, so the reference runs from an installed package as from a checkout (whose ``configs/`` is this folder).
"""

from pathlib import Path

from ..errors import ConfigError, did_you_mean
from ..files import user_path

HERE = Path(__file__).parent


def names() -> list[str]:
    """The shipped configs' names, e.g. ``reference``."""
    return sorted(p.stem for p in HERE.glob("*.toml"))


def find(path: str | Path) -> Path:
    """``path`` when it is a file; else the shipped config of that name (``reference`` or
    ``reference.toml``); else a one-line error (listing the shipped names for a bare name)."""
    path = Path(user_path(path))
    if path.exists():
        return path
    if len(path.parts) == 1 and path.suffix in ("", ".toml"):  # a bare name
        shipped = HERE / f"{path.stem}.toml"
        if shipped.is_file():
            return shipped
        raise ConfigError(f"{path}: config file not found; the configs aekit ships: {', '.join(names())}"
                          + did_you_mean(path.stem, names()))
    raise ConfigError(f"{path}: config file not found")
