"""Pebble launcher (moved here from tests/support at integration)."""
from tests.support.pebble import *  # noqa: F401,F403
from tests.support.pebble import Pebble, ChallTestSrv, ensure_pebble  # noqa: F401
