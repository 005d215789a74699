"""Feedback inside long steps: a bar on a terminal (none in a log), and a note when work will take long.

A bar shows where ``show`` says, by default (None) where stderr is a terminal: a log file or a pipe gets
no lines redrawn with carriage returns. Lines said while a bar shows print above it (:func:`say`).
:func:`in_parts` runs work over many items a part at a time, so that its bar moves, and times the first
few items: when the pace puts the whole past :data:`SLOW_SECONDS`, it says so once, before the rest.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Callable

from tqdm.auto import tqdm

SLOW_SECONDS = 60.0  # work whose estimate passes this says so, with the estimate
PROBE = 3  # items timed first, for the estimate
PART_SECONDS = 0.5  # later parts take about this long at the pace so far: the bar moves, per-part costs stay small


def shows(show: bool | None) -> bool:
    """Whether a bar shows: as ``show`` says, or (None) where stderr is a terminal."""
    return sys.stderr.isatty() if show is None else bool(show)


def bar(total: int, *, unit: str, show: bool | None, desc: str | None = None) -> tqdm:
    """A bar on stderr, cleared when it closes; where none shows, one whose calls do nothing."""
    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False,
                disable=not shows(show))


def say(log: Callable[[str], None] | None) -> Callable[[str], None]:
    """``log``, or a print to stdout above any bar that shows (flushed: a log file gets the line when it is said)."""
    def printed(line: str) -> None:
        tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()
    return log or printed


class FractionBar(tqdm):
    """A bar over a count that moves by fractions, read as such (2.35/10 epochs): ``at(position)`` moves it."""

    def __init__(self, total: int, *, initial: int = 0, unit: str):
        super().__init__(total=total, initial=initial, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False,
                         bar_format="{l_bar}{bar}| {count}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]")

    @property
    def format_dict(self):
        d = super().format_dict
        done = math.floor(d["n"] * 100 + 1e-6) / 100  # rounded down: 599.996 of 600 is not "600"
        return {**d, "count": f"{done:.2f}".rstrip("0").rstrip(".")}

    def at(self, position: float) -> None:
        self.update(position - self.n)


def in_parts(work: Callable[[int, int], None], total: int, *, moving: tqdm | None = None,
             slow: Callable[[float], None] | None = None, first: int = PROBE) -> float:
    """Run ``work(start, stop)`` over the items [0, total): the ``first`` items, then parts of about
    :data:`PART_SECONDS` at the pace so far, the bar ``moving`` moved by each. When the first part's pace puts the
    whole past :data:`SLOW_SECONDS`, ``slow(seconds_per_item)`` is called once, before the rest. Returns the seconds
    per item."""
    done, spent, size = 0, 0.0, min(first, total)
    probe = size
    while done < total:
        t0 = time.perf_counter()
        work(done, done + size)
        spent += time.perf_counter() - t0
        done += size
        if moving is not None:
            moving.update(size)
        pace = spent / done
        if done == probe < total and slow is not None and pace * total > SLOW_SECONDS:
            slow(pace)
        size = min(total - done, max(1, int(PART_SECONDS / pace)) if pace > 0 else total)
    return spent / max(total, 1)


def estimate(seconds_per_item: float, total: int, item: str = "image") -> str:
    """In words: "about 0.9 s an image: about 60 minutes for 4000 images"."""
    pace = f"{seconds_per_item:.0f}" if seconds_per_item >= 10 else f"{seconds_per_item:.2g}"
    whole = seconds_per_item * total
    when = (f"{whole:.0f} seconds" if whole < 120 else f"{whole / 60:.0f} minutes" if whole < 7200
            else f"{whole / 3600:.1f} hours")
    return f"about {pace} s a{'n' if item[0] in 'aeiou' else ''} {item}: about {when} for {total} {item}s"
