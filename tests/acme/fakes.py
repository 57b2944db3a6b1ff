"""A scripted stand-in for requests.Session (a third-party object, not our code) and a fake
clock, for transport and polling tests that must not wait."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict

DIRECTORY = {
    "newNonce": "https://ca.test/nonce", "newAccount": "https://ca.test/acct",
    "newOrder": "https://ca.test/order", "revokeCert": "https://ca.test/revoke",
    "keyChange": "https://ca.test/key", "renewalInfo": "https://ca.test/ari",
    "meta": {"profiles": {"classic": "the usual"}, "externalAccountRequired": False, "unknown": 1},
    "someFutureField": {"x": 1},
}


def response(status: int = 200, body: Any = b"", headers: dict[str, str] | None = None,
             nonce: str | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.headers = CaseInsensitiveDict(headers or {})
    if nonce:
        r.headers["Replay-Nonce"] = nonce
    if isinstance(body, dict | list):
        body = json.dumps(body).encode()
        r.headers.setdefault("Content-Type", "application/json")
    r._content = body if isinstance(body, bytes) else str(body).encode()
    return r


def problem(status: int, type_: str, detail: str = "d", nonce: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> requests.Response:
    doc = {"type": "urn:ietf:params:acme:error:" + type_, "detail": detail, **extra}
    r = response(status, doc, nonce=nonce, headers=headers)
    r.headers["Content-Type"] = "application/problem+json"
    return r


class FakeSession:
    """Answers each request with the next scripted item (a Response or an exception)."""

    def __init__(self, *script: requests.Response | Exception):
        self.script = deque(script)
        self.calls: list[dict[str, Any]] = []
        self.headers: dict[str, str] = {}

    def add(self, *items: requests.Response | Exception) -> None:
        self.script.extend(items)

    def request(self, method: str, url: str, **kw: Any) -> requests.Response:
        body = json.loads(kw["data"]) if kw.get("data") else None
        self.calls.append({"method": method, "url": url, "body": body, **kw})
        if not self.script:
            raise AssertionError(f"unexpected request {method} {url}")
        item = self.script.popleft()
        if isinstance(item, Exception):
            raise item
        item.url = url
        return item

    def close(self) -> None:
        pass

    def protected(self, index: int) -> dict[str, Any]:
        from daemon.acme import jws

        return json.loads(jws.b64url_decode(self.calls[index]["body"]["protected"]))


class FakeClock:
    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds
