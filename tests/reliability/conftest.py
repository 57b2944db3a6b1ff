"""Reliability fixtures: a fresh sandbox + Pebble per test (about half a second to start), and
one record of everything the session's alicertd processes printed (scanned for secrets by
test_secrets.py, which runs last)."""

from __future__ import annotations

import pytest

from tests.reliability.helpers import Transcripts
from tests.support.pebble import ensure_pebble
from tests.support.world import World


@pytest.fixture
def world():
    ensure_pebble()
    with World() as w:
        yield w


@pytest.fixture
def slow_dns_world():
    """Nameservers that lag 1 s behind the API: every issuance then takes a second or two,
    long enough for a kill or a competing process to land in the middle of it."""
    ensure_pebble()
    with World(dns_delay=1.0) as w:
        yield w


@pytest.fixture(scope="session")
def transcripts() -> Transcripts:
    return Transcripts()
