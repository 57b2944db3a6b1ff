"""The renewal tests use the end-to-end world (a sandbox and Pebble per test) where they need
a CA; the rest build configs and state dirs directly."""

from tests.e2e.conftest import world  # noqa: F401 - the fixture
