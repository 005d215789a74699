"""The package version: one home, read by the package face, model.json and metrics.json."""

from __future__ import annotations

import re

__version__ = "0.1.0"


def newer(version: object) -> str | None:
    """"written by aekit X, newer than this aekit Y: upgrade aekit (pip install -U aekit)" when ``version``
    (the one a file records) is a later release than this one, else None (the same, older, or unreadable)."""
    if _release(version) <= _release(__version__):
        return None
    return f"written by aekit {version}, newer than this aekit {__version__}: upgrade aekit (pip install -U aekit)"


def _release(version: object) -> tuple[int, ...]:
    """(0, 2, 0) for "0.2.0" (or "0.2.0.dev1"); () for anything else."""
    found = re.match(r"\d+(\.\d+)*", str(version)) if isinstance(version, str) else None
    return tuple(int(p) for p in found.group().split(".")) if found else ()
