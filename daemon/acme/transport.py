"""The HTTP side of ACME: signed POSTs, nonces, retries, problem documents (RFC 8555 §6).

Kept apart from the protocol (``client.py``) as in certbot's ``acme`` package: nothing here
knows what an order is. What it guarantees:

* one ``requests.Session``, ``User-Agent: alicertd/<version>``, a timeout on every call and
  ``verify=`` the configured CA bundle;
* a nonce pool fed by the ``Replay-Nonce`` of every response; ``HEAD newNonce`` only when the
  pool is empty (RFC 8555 §7.2);
* ``badNonce`` retried at once with a fresh nonce, at most ``max_bad_nonce`` times (§6.5);
* connection errors and 5xx retried with a bounded, jittered backoff that honours
  ``Retry-After`` but never sleeps past the deadline — except for a POST the caller marks
  ``retry=False`` (newOrder, finalize, key change): once such a request may have reached the CA
  (a timeout, a dropped connection, a 5xx) it is never sent again blindly; the caller re-reads
  the resource instead. Only a connection that was never made is retried for those;
* every problem document raised as the typed exception of ``problems.PROBLEM_TYPES``, and
  every other surprise as AcmeProtocolError naming the URL and HTTP status;
* ``round_trips``: a count of HTTP requests made (bench/ reads it).

Not thread-safe as a whole (a requests.Session is not): use one Transport per thread. The
nonce pool and the counter are locked anyway, so sharing one only risks the Session.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import requests

from daemon import __version__
from daemon.acme import jws
from daemon.acme.problems import (
    AcmeError,
    AcmeProtocolError,
    AcmeUnreachable,
    BadNonce,
    problem_from_json,
)
from daemon.keys import PrivateKey

log = logging.getLogger(__name__)

USER_AGENT = f"alicertd/{__version__}"
JOSE_JSON = "application/jose+json"
PROBLEM_JSON = "application/problem+json"
PEM_CHAIN = "application/pem-certificate-chain"

# Seconds before retry n (1-based) of a connection error or 5xx; each is jittered to 50-150 %.
RETRY_BACKOFF = (0.5, 1.0, 2.0, 4.0)
MAX_BAD_NONCE = 10
MAX_NONCE_POOL = 16
DEFAULT_RETRY_BUDGET = 60.0  # seconds of retrying when the caller gives no deadline

_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[^;,]+(?:="[^"]*"|=[^;,]*)?)*)')
_LINK_PARAM = re.compile(r';\s*([^=;,\s]+)\s*=\s*(?:"([^"]*)"|([^;,\s]*))')


@dataclass(frozen=True)
class Response:
    """One HTTP response, already checked not to be a problem document."""

    method: str
    url: str
    status: int
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    retry_after: float | None = None  # seconds, from the Retry-After header

    def json(self) -> dict[str, Any]:
        """The body as a JSON object, or AcmeProtocolError naming the URL and status."""
        try:
            data = json.loads(self.body)
        except ValueError:
            raise AcmeProtocolError(f"expected a JSON object, got {_snippet(self.body)}", status=self.status,
                                    url=self.url, method=self.method) from None
        if not isinstance(data, dict):
            raise AcmeProtocolError(f"expected a JSON object, got {type(data).__name__}", status=self.status,
                                    url=self.url, method=self.method)
        return data

    @property
    def location(self) -> str | None:
        value = self.headers.get("Location")
        return urljoin(self.url, value) if value else None

    def require_location(self) -> str:
        if not self.location:
            raise AcmeProtocolError("response has no Location header", status=self.status, url=self.url,
                                    method=self.method)
        return self.location

    def links(self, rel: str) -> list[str]:
        """Targets of ``Link`` headers with relation ``rel``, resolved against the URL."""
        return links_of(self.headers, rel, self.url)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def links_of(headers: Mapping[str, str], rel: str, base: str) -> list[str]:
    """Parse (possibly comma-joined) ``Link`` headers (RFC 8288) for relation ``rel``."""
    out = []
    for match in _LINK.finditer(headers.get("Link", "") or ""):
        for name, quoted, bare in _LINK_PARAM.findall(match.group(2)):
            if name.lower() == "rel" and rel in (quoted or bare).split():
                out.append(urljoin(base, match.group(1)))
    return out


class Transport:
    """Signed ACME requests over one HTTP session.

    ``clock`` (monotonic seconds), ``sleep`` and ``wall_clock`` (for HTTP-date Retry-After) are
    injectable so waits can be tested without waiting.
    """

    def __init__(self, *, ca_bundle: str | None = None, timeout: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 wall_clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 max_bad_nonce: int = MAX_BAD_NONCE, backoff: tuple[float, ...] = RETRY_BACKOFF,
                 session: requests.Session | None = None, user_agent: str = USER_AGENT):
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self.verify: str | bool = str(ca_bundle) if ca_bundle else True
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.wall_clock = wall_clock
        self.rng = rng or random.Random()
        self.max_bad_nonce = max_bad_nonce
        self.backoff = backoff
        self.new_nonce_url: str | None = None
        self._nonces: list[str] = []
        self._lock = threading.Lock()
        self._round_trips = 0
        self.bad_nonce_retries = 0  # requests repeated because the CA refused the nonce

    @property
    def round_trips(self) -> int:
        """HTTP requests made so far (every attempt, HEAD newNonce included)."""
        return self._round_trips

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------------ requests

    def get(self, url: str, *, deadline: float | None = None) -> Response:
        """Unauthenticated GET (only the directory and ARI renewalInfo are fetched this way)."""
        return self._with_retries("GET", url, deadline, lambda: self._send("GET", url))

    def post(self, url: str, payload: Any, *, key: PrivateKey, kid: str | None,
             deadline: float | None = None, accept: str | None = None, retry: bool = True) -> Response:
        """A JWS-signed POST; ``payload`` None is POST-as-GET. Retries badNonce with a fresh
        nonce (the CA refused it unprocessed), connection errors and 5xx with backoff; raises
        the typed problem otherwise. ``retry=False``: a state-changing request that must not
        be repeated once it may have been processed; then only a connection that could not be
        made at all is retried, and any other failure is raised for the caller to re-read."""
        bad_nonces = 0

        def attempt() -> Response:
            nonlocal bad_nonces
            while True:
                body = jws.sign(key, payload, url=url, nonce=self._take_nonce(), kid=kid)
                headers = {"Content-Type": JOSE_JSON}
                if accept:
                    headers["Accept"] = accept
                try:
                    return self._send("POST", url, data=json.dumps(body), headers=headers)
                except BadNonce as exc:
                    bad_nonces += 1
                    if bad_nonces > self.max_bad_nonce:
                        # Say that this is the bounded retry giving up, not a single refusal.
                        exc.detail += f" (gave up after {bad_nonces} attempts, each with a fresh nonce)"
                        exc.args = (exc._message(),)
                        raise
                    with self._lock:
                        self.bad_nonce_retries += 1
                    log.debug("badNonce from %s, retrying with a fresh nonce (%d)", url, bad_nonces)

        return self._with_retries("POST", url, deadline, attempt, unsent_only=not retry and payload is not None)

    # ------------------------------------------------------------------ nonces

    def _take_nonce(self) -> str:
        with self._lock:
            if self._nonces:
                return self._nonces.pop()
        if not self.new_nonce_url:
            raise AcmeProtocolError("no nonce in hand and no newNonce URL known")
        url = self.new_nonce_url
        self._send("HEAD", url)  # a failure here is retried by the caller's _with_retries
        with self._lock:
            if self._nonces:
                return self._nonces.pop()
        raise AcmeProtocolError("newNonce answered without a Replay-Nonce header", url=url, method="HEAD")

    def _keep_nonce(self, headers: Mapping[str, str]) -> None:
        nonce = headers.get("Replay-Nonce")
        if nonce:
            with self._lock:
                self._nonces.append(nonce)
                del self._nonces[:-MAX_NONCE_POOL]

    # ------------------------------------------------------------------ one request

    def _send(self, method: str, url: str, **kw: Any) -> Response:
        with self._lock:
            self._round_trips += 1
        try:
            raw = self.session.request(method, url, timeout=self.timeout, verify=self.verify, **kw)
        except requests.exceptions.SSLError as exc:
            error = AcmeUnreachable(f"TLS error: {_reason(exc)}", url=url, method=method)
            error.retryable = False  # a certificate that does not verify will not verify later
            raise error from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            error = AcmeUnreachable(f"cannot reach the ACME server: {_reason(exc)}", url=url, method=method)
            error.unsent = _never_sent(exc)
            raise error from None
        except requests.RequestException as exc:  # a bad URL and the like: retrying cannot help
            raise AcmeProtocolError(f"request failed: {_reason(exc)}", url=url, method=method) from None
        self._keep_nonce(raw.headers)
        log.debug("%s %s -> %d", method, url, raw.status_code)
        response = Response(method=method, url=url, status=raw.status_code, headers=raw.headers,
                            body=raw.content, retry_after=self._retry_after(raw.headers))
        if raw.status_code >= 400 or raw.headers.get("Content-Type", "").startswith(PROBLEM_JSON):
            raise self._problem(response)
        return response

    def _problem(self, response: Response) -> AcmeError:
        try:
            doc = json.loads(response.body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or "type" not in doc:
            error: AcmeError = AcmeProtocolError(
                f"unexpected response {_snippet(response.body)}", status=response.status, url=response.url,
                method=response.method, retry_after=response.retry_after)
            error.retryable = response.status >= 500
            return error
        tos = response.links("terms-of-service")
        return problem_from_json(doc, status=response.status, url=response.url, method=response.method,
                                 retry_after=response.retry_after, tos_url=tos[0] if tos else None)

    def _retry_after(self, headers: Mapping[str, str]) -> float | None:
        return parse_retry_after(headers.get("Retry-After"), self.wall_clock())

    # ------------------------------------------------------------------ retries

    def _with_retries(self, method: str, url: str, deadline: float | None,
                      attempt: Callable[[], Response], *, unsent_only: bool = False) -> Response:
        """Run ``attempt``; on a connection error or a 5xx, wait (jittered backoff, or the
        server's Retry-After) and try again, at most len(backoff) times and never past the
        deadline (then the last error is raised). ``unsent_only``: retry only failures that
        prove the request never reached the server."""
        if deadline is None:
            deadline = self.clock() + DEFAULT_RETRY_BUDGET
        for retry in range(len(self.backoff) + 1):
            try:
                return attempt()
            except AcmeError as exc:
                transient = exc.retryable and (isinstance(exc, AcmeUnreachable) or (exc.status or 0) >= 500)
                if unsent_only and not getattr(exc, "unsent", False):
                    transient = False
                if not transient or retry >= len(self.backoff):
                    raise
                delay = self.backoff[retry] * (0.5 + self.rng.random())
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                if self.clock() + delay > deadline:
                    raise
                log.info("%s; retrying %s %s in %.1fs", exc, method, url, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _never_sent(exc: BaseException) -> bool:
    """True when the request certainly did not reach the server: the TCP connection was
    refused or timed out before it was made. A read timeout or a connection dropped after
    sending may have been processed."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if type(cur).__name__ in ("NewConnectionError", "ConnectTimeoutError", "NameResolutionError"):
            return True
        for arg in getattr(cur, "args", ()):
            if isinstance(arg, BaseException) and id(arg) not in seen:
                cur = arg
                break
            reason = getattr(arg, "reason", None)
            if isinstance(reason, BaseException):
                cur = reason
                break
        else:
            cur = cur.__cause__ or cur.__context__
    return "NewConnectionError" in str(exc) or "Connection refused" in str(exc)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), never negative."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def _reason(exc: BaseException) -> str:
    """A short, one-line reason for a requests exception (they nest urllib3 errors deeply)."""
    text = str(exc)
    inner = re.search(r"\(Caused by \w+\((.*)\)\)\s*$", text)
    if inner:
        text = inner.group(1)
    ssl_reason = re.search(r"\[SSL: [A-Z0-9_]+\] ([^(']*?)\s*\(_ssl", text)
    if ssl_reason:
        return ssl_reason.group(1)
    text = re.sub(r"<urllib3\.[^>]*>:\s*", "", text)
    text = re.sub(r"HTTPS?Connection(Pool)?\(host='[^']*', port=\d+\):\s*", "", text).strip("\"' ")
    text = " ".join(text.split())
    return text[:300] or type(exc).__name__


def _snippet(body: bytes) -> str:
    text = " ".join(body[:120].decode("utf-8", "replace").split())
    return repr(text) + ("..." if len(body) > 120 else "") if text else "(empty body)"
