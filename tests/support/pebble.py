"""Pebble launcher: lives in sandbox.pebble (the demo uses it too)."""

from sandbox.pebble import *  # noqa: F401,F403
from sandbox.pebble import (  # noqa: F401
    BLOCKED_DOMAIN,
    DEFAULT_PROFILES,
    ChallTestSrv,
    Pebble,
    PebbleUnavailable,
    ensure_pebble,
    free_port,
    pebble_finds_by_cert_id,
)
