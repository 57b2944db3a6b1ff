"""Session-wide conformance: every exchange any sandbox answers during the whole test run is
collected (tagged with the test that caused it) and checked by one test that runs last,
``tests/conformance/test_session.py::test_every_exchange_of_this_run_conforms``.

Registered from tests/conftest.py. Exchanges from tests/sandbox/ are left out on purpose: those
tests probe the sandbox's own refusals with requests no provider sends (unknown parameters,
missing required ones). Every other test reaches the sandbox through our providers, the access
layer or the CLI, which must send only what the official models define.
"""

from __future__ import annotations

import threading

import pytest

from sandbox import calllog

SESSION_TEST = "test_every_exchange_of_this_run_conforms"
EXEMPT_DIRS = ("tests/sandbox/",)

_lock = threading.Lock()
_current = {"test": ""}
collected: list[tuple[str, dict]] = []  # (nodeid of the test that caused it, exchange)


def _on_exchange(exchange: dict) -> None:
    with _lock:
        test = _current["test"]
    if test and not test.startswith(EXEMPT_DIRS):
        collected.append((test, exchange))


def pytest_configure(config) -> None:
    calllog.add_listener(_on_exchange)


def pytest_unconfigure(config) -> None:
    calllog.remove_listener(_on_exchange)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    with _lock:
        _current["test"] = item.nodeid
    try:
        yield
    finally:
        with _lock:
            _current["test"] = ""


def pytest_collection_modifyitems(session, config, items) -> None:
    """The session check goes last, after every test whose exchanges it checks."""
    last = [i for i in items if i.name == SESSION_TEST]
    items[:] = [i for i in items if i.name != SESSION_TEST] + last
