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


def issue_replaceable(client, domains, solver, *, key_type: str = "ec256", deadline: float = 60.0, **kw):
    """(key, issued) for a certificate Pebble can find by its ARI CertID, for tests of its
    ``replaces`` semantics: one of its serials in 256 is answered with a 500 instead (see
    ``pebble_finds_by_cert_id``), so issue again, at most four times."""
    from daemon import keys
    from daemon.acme import issue_certificate
    for _ in range(4):
        key = keys.generate_private_key(key_type)
        issued = issue_certificate(client, domains, key, solver, deadline_seconds=deadline, **kw)
        if pebble_finds_by_cert_id(issued.cert_info.serial):
            return key, issued
    raise AssertionError("four serials in a row that Pebble cannot find by CertID (one chance in 4e9)")
