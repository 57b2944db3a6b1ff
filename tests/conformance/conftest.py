"""Fixtures for the conformance scenarios: a sandbox, and every exchange it answers."""

from __future__ import annotations

import pytest

from sandbox.calllog import capture_exchanges

from .checker import check_all


@pytest.fixture
def exchanges():
    """Every RPC exchange any sandbox answers during the test (see sandbox.calllog)."""
    with capture_exchanges() as got:
        yield got


@pytest.fixture
def state_dir(tmp_path):
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def sb():
    from sandbox import Sandbox
    with Sandbox(cdn_rollout_seconds=0.2) as sandbox:
        yield sandbox


def assert_conform(exchanges: list[dict], product: str, actions: set[str]) -> None:
    """The scenario reached every action in ``actions`` with a successful answer, and every
    exchange holds to the official models."""
    served = {e["action"] for e in exchanges if e["product"] == product and e["status"] == 200}
    assert actions <= served, f"scenario never got a successful {sorted(actions - served)}"
    problems = check_all(exchanges)
    assert not problems, "not as the official models define it:\n  " + "\n  ".join(problems)
