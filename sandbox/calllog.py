"""The record of every request the sandbox answered, for tests and for the admin API.

Secrets never enter it: private keys, STS tokens and signatures are replaced by ``***`` and long
values (PEM chains) by a short digest, so the log can be printed or attached to a bug report.
It has its own lock (not the world lock) because it is written after the world lock is released.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, deque

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
