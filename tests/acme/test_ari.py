"""choose_renewal_time: uniform inside the ARI window (RFC 9773 §4.2)."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from daemon.acme.ari import choose_renewal_time

START = dt.datetime(2030, 3, 1, tzinfo=dt.UTC)
END = START + dt.timedelta(days=2)


def test_always_inside_the_window_and_spread_over_it():
    rng = random.Random(7)
    picks = [choose_renewal_time(START, END, rng) for _ in range(2000)]
    assert all(START <= t <= END for t in picks)
    offsets = sorted((t - START).total_seconds() / (END - START).total_seconds() for t in picks)
    # uniform: every tenth of the window gets roughly a tenth of the draws
    deciles = [sum(1 for o in offsets if i / 10 <= o < (i + 1) / 10) for i in range(10)]
    assert min(deciles) > 150 and max(deciles) < 250
    assert offsets[0] < 0.01 and offsets[-1] > 0.99


def test_deterministic_with_a_seeded_rng():
    assert choose_renewal_time(START, END, random.Random(1)) == choose_renewal_time(START, END, random.Random(1))


def test_zero_width_window_and_reversed_window():
    assert choose_renewal_time(START, START, random.Random(3)) == START
    with pytest.raises(ValueError, match="ends .* before it starts"):
        choose_renewal_time(END, START)
