"""End-to-end fixtures: a fresh sandbox + Pebble per test (about half a second to start)."""

from __future__ import annotations

import pytest

from tests.support.pebble import ensure_pebble
from tests.support.world import World


@pytest.fixture
def world():
    ensure_pebble()
    with World() as w:
        yield w
