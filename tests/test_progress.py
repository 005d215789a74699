"""Feedback inside long steps: work in parts with one note when it will take long, a bar read in fractions."""

import pytest

from aekit.progress import FractionBar, estimate, in_parts
from helpers import FakeClock


@pytest.fixture
def clock(monkeypatch):
    return FakeClock(monkeypatch)


def test_slow_work_says_so_once_after_the_first_items_and_before_the_rest(clock):
    parts, said = [], []

    def work(start, stop):  # 2 s an item
        parts.append((start, stop))
        clock.now += 2.0 * (stop - start)

    assert in_parts(work, 40, slow=lambda pace: said.append((pace, len(parts)))) == 2.0
    assert said == [(2.0, 1)]  # once, after the first part, from its pace
    assert parts[0] == (0, 3) and parts[-1][1] == 40  # the first 3 items timed; every item once, in order
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))


def test_quick_work_says_nothing_and_runs_in_parts_of_about_half_a_second(clock):
    parts, said = [], []

    def work(start, stop):  # 1/64 s an item (exact in binary): 32 items a part after the first 3
        parts.append((start, stop))
        clock.now += (stop - start) / 64

    in_parts(work, 500, slow=said.append)  # 8 s in all: under a minute
    assert not said and parts[:3] == [(0, 3), (3, 35), (35, 67)] and parts[-1][1] == 500


def test_work_done_in_its_first_part_needs_no_estimate(clock):
    said = []

    def work(start, stop):
        clock.now += 100.0 * (stop - start)

    in_parts(work, 3, slow=said.append)
    in_parts(work, 10, slow=said.append, first=10)  # one part (a batched method): nothing left to estimate
    assert said == []


def test_the_estimate_in_words():
    assert estimate(0.9, 4000) == "about 0.9 s an image: about 60 minutes for 4000 images"
    assert estimate(0.0153, 8000) == "about 0.015 s an image: about 2 minutes for 8000 images"
    assert estimate(5, 20) == "about 5 s an image: about 100 seconds for 20 images"
    assert estimate(12.4, 2000, "file") == "about 12 s a file: about 6.9 hours for 2000 files"


def test_a_fraction_bar_reads_its_count_in_fractions_rounded_down():
    bar = FractionBar(600, unit="epoch")
    try:
        bar.at(2.5)
        assert "2.5/600" in str(bar)
        bar.at(3)
        assert "| 3/600" in str(bar)
        bar.at(599.996)
        assert "599.99/600" in str(bar)
    finally:
        bar.close()
