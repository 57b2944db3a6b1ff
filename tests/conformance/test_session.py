"""The whole run's sandbox exchanges (collected by tests/conformance/session.py), checked last."""

from __future__ import annotations

import pytest

from . import session
from .checker import check_exchange, collapse_indexes


def test_every_exchange_of_this_run_conforms():
    exchanges = list(session.collected)
    if not exchanges:
        pytest.skip("no sandbox exchange in this run (run it with the tests that drive the sandbox)")
    first: dict[str, str] = {}
    for test, ex in exchanges:
        for p in check_exchange(ex):
            first.setdefault(collapse_indexes(p), test)
    assert not first, f"{len(first)} problems over {len(exchanges)} exchanges:\n  " + "\n  ".join(
        f"{p}  (first in {t})" for p, t in first.items())
