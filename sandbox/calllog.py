"""The record of every request the sandbox answered, for tests and for the admin API.

Secrets never enter it: private keys, STS tokens and signatures are replaced by ``***`` and long
values (PEM chains) by a short digest, so the log can be printed or attached to a bug report.
It has its own lock (not the world lock) because it is written after the world lock is released.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator

REDACTED = ("SSLPri", "CertificatePrivateKey", "SecurityToken", "Signature", "PrivateKey", "Key")
# Common parameters that say nothing about the call itself; left out of ``params``.
COMMON = {"Action", "Version", "Format", "AccessKeyId", "SignatureMethod", "SignatureVersion",
          "SignatureNonce", "SignatureType", "Timestamp"}
_LONG = 160


def redact_params(params: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in params.items():
        if k in COMMON:
            continue
        if k in REDACTED:
            out[k] = "***"
        elif isinstance(v, str) and len(v) > _LONG:
            digest = hashlib.sha256(v.encode("utf-8")).hexdigest()[:16]
            out[k] = f"<{len(v)} chars sha256:{digest}>"
        else:
            out[k] = v
    return out


class CallLog:
    def __init__(self, maxlen: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict] = deque(maxlen=maxlen)

    def append(self, entry: dict) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self, since: float | None = None, action: str | None = None) -> list[dict]:
        with self._lock:
            items = list(self._entries)
        return [dict(e) for e in items
                if (since is None or e["time"] >= since) and (action is None or e["action"] == action)]

    def counts(self, since: float | None = None) -> dict[str, int]:
        return dict(Counter(e["action"] for e in self.entries(since=since)))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# --------------------------------------------------------------------------- exchanges (tests)
#
# The call log keeps no response bodies and drops the common parameters. The conformance tests
# (tests/conformance) need both, for every call any sandbox in the process answers, so each
# answered RPC call is also offered to the listeners registered here: nothing is built or kept
# while nobody listens. Secret values are replaced by ``***`` (names are what is checked).

SECRET_FIELDS = frozenset(REDACTED) | {"AccessKeySecret", "EncryptPrivateKey", "SignPrivateKey"}
_listeners: list[Callable[[dict], None]] = []
_listeners_lock = threading.Lock()


def _redact_body(value):
    if isinstance(value, dict):
        return {k: "***" if k in SECRET_FIELDS and isinstance(v, str) else _redact_body(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_body(v) for v in value]
    return value


def listening() -> bool:
    return bool(_listeners)


def publish_exchange(product: str, version: str, action: str, method: str, status: int,
                     params: dict[str, str], body: dict | None, fault: str | None) -> None:
    """Offer one answered RPC call to every listener (see :func:`capture_exchanges`)."""
    with _listeners_lock:
        listeners = list(_listeners)
    if not listeners:
        return
    record = {"product": product, "version": version, "action": action, "method": method,
              "status": status, "fault": fault,
              "params": {k: "***" if k in SECRET_FIELDS else v for k, v in params.items()},
              "body": _redact_body(body)}
    for listener in listeners:
        with contextlib.suppress(Exception):
            listener(dict(record))


def add_listener(listener: Callable[[dict], None]) -> None:
    """Call ``listener(exchange)`` for every RPC exchange any sandbox in this process answers
    (from the sandbox's request threads): product, version, action, method, status, fault, all
    request params (common ones included) and the parsed response body (``None`` if not JSON)."""
    with _listeners_lock:
        _listeners.append(listener)


def remove_listener(listener: Callable[[dict], None]) -> None:
    with _listeners_lock:
        if listener in _listeners:
            _listeners.remove(listener)


@contextlib.contextmanager
def capture_exchanges() -> Iterator[list[dict]]:
    """``with capture_exchanges() as got:`` collects every exchange answered meanwhile."""
    got: list[dict] = []
    listener = got.append
    add_listener(listener)
    try:
        yield got
    finally:
        remove_listener(listener)
