"""Fixtures for the ACME tests: one pebble-challtestsrv and one Pebble for the whole session
(tests that need a differently configured Pebble start their own, module-scoped)."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # tests/ is not a package: make `tests.support` importable
    sys.path.insert(0, str(ROOT))

from daemon import keys  # noqa: E402
from daemon.acme import AcmeClient  # noqa: E402
from tests.support.pebble import ChallTestSolver, ChallTestSrv, Pebble  # noqa: E402


@pytest.fixture(scope="session")
def challtestsrv():
    with ChallTestSrv() as server:
        yield server


@pytest.fixture(scope="session")
def pebble(challtestsrv):
    # One alternate root, so that alternate chains (Link rel="alternate") exist to choose from.
    with Pebble(dns_server=challtestsrv.dns_addr, env={"PEBBLE_ALTERNATE_ROOTS": "1"}) as ca:
        yield ca


@pytest.fixture
def solver(challtestsrv):
    return ChallTestSolver(challtestsrv)


@pytest.fixture
def make_client(pebble):
    """Build AcmeClients against the session Pebble; closed at the end of the test. ``sleep``
    is every wait the client makes (poll intervals, retry backoff): a test can count them."""
    made: list[AcmeClient] = []

    def make(key_type: str = "ec256", *, register: bool = True, ca: Pebble | None = None,
             sleep: Callable[[float], None] = time.sleep) -> AcmeClient:
        ca = ca or pebble
        client = AcmeClient(ca.directory_url, keys.generate_private_key(key_type), ca_bundle=ca.ca_bundle,
                            sleep=sleep)
        made.append(client)
        if register:
            client.new_account(["mailto:test@example.com"], tos_agreed=True)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client):
    """A client with a freshly registered account (EC P-256 account key)."""
    return make_client()


@pytest.fixture
def zone():
    """A domain of its own for each test, so tests never share TXT records or authorizations."""
    return f"t{uuid.uuid4().hex[:12]}.example.com"
