"""Suite-wide hooks: the session conformance check (tests/conformance/session.py)."""

from tests.conformance.session import (  # noqa: F401 - pytest finds hooks by name
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_protocol,
    pytest_unconfigure,
)
