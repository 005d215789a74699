"""User-facing errors: each one is shown as a single line by the CLI; and notes, one line that stops nothing.

An error may name the parameters it is about (``keys``): config keys such as ``train.batch_size``
or argument names such as ``tile``, spelled in the message exactly so. A Python user reads them as
they are; the command line shows each one as its flag (``--batch-size``, ``--tile``) where the
user gave it as one.
"""

from __future__ import annotations

import difflib
import sys
from typing import Iterable


class AekitError(Exception):
    """A problem with the user's input (file, option, config); the message names it."""

    quiet = False  # True: raised alike on several processes, and printed by rank 0 alone (training.agreement)

    def __init__(self, message: str = "", *, keys: str | Iterable[str] = ()):
        super().__init__(message)
        self.keys = (keys,) if isinstance(keys, str) else tuple(keys)

    def __reduce__(self):  # keys survive pickling (errors raised in DataLoader worker processes)
        return (_rebuild, (type(self), str(self), self.keys))


def _rebuild(cls: type, message: str, keys: tuple[str, ...]) -> "AekitError":
    return cls(message, keys=keys)


class ConfigError(AekitError):
    """An invalid configuration file or option."""


class DataError(AekitError):
    """Data that cannot be found, read or used."""


def skip_bad_hint(e: AekitError, key: str = "skip_bad") -> AekitError:
    """``e``, an unreadable input file, pointing to the option ``key`` that skips such files."""
    return type(e)(f"{e} ({key} skips unreadable files)", keys=(*e.keys, key))


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """" (did you mean 'x'?)" for the closest of ``choices`` to ``word``, or "" when none is close."""
    names = {str(c): c for c in choices}
    close = difflib.get_close_matches(str(word), list(names), n=1, cutoff=0.6)
    return f" (did you mean {names[close[0]]!r}?)" if close else ""


def note(text: str) -> None:
    """``text`` as one line on stderr, ``aekit: note: ...``: what the user should know, from deep in the
    library where no log is at hand (e.g. a worker process), that stops nothing."""
    sys.stderr.write(f"aekit: note: {' '.join(text.splitlines())}\n")
    sys.stderr.flush()
