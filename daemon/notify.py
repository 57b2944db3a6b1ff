"""Telling people: ``[[notify]]`` senders for a generic webhook, DingTalk, Feishu/Lark and WeCom.

A notification is best effort by contract: every send has a 5 s timeout and one retry, a failure
is logged and never raised, so a dead chat robot can never fail a renewal. Robot URLs carry
their access token (DingTalk ``access_token=``, WeCom ``key=``, Feishu in the path), so a URL is
never logged whole: only scheme and host, with the path and query replaced by ``…``.

Payload formats (robot documentation):

- DingTalk custom robot: ``{"msgtype": "markdown", "markdown": {"title", "text"}}``; with a
  signing secret, ``timestamp`` (ms) and ``sign`` query parameters where
  ``sign = base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))``.
- Feishu/Lark custom bot: ``{"msg_type": "text", "content": {"text"}}``; with a secret,
  ``timestamp`` (s, as a string) and ``sign`` in the body where
  ``sign = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))``.
- WeCom group robot: ``{"msgtype": "markdown", "markdown": {"content"}}`` (max 4096 bytes).
- generic webhook: the event as JSON (see :meth:`Event.as_json`).

The robots answer HTTP 200 even on failure and put the verdict in the body (DingTalk/WeCom
``errcode``, Feishu ``code``/``StatusCode``), so those are checked too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from daemon.config import NotifyConfig

EVENT_KINDS = ("failure", "renewal", "expiring")
KINDS = ("webhook", "dingtalk", "feishu", "wecom")
TIMEOUT = 5.0
RETRY_DELAY = 1.0
WECOM_MAX_BYTES = 4096


@dataclass(frozen=True)
class Event:
    """Something worth telling a human. ``details`` holds plain JSON values (``days_left`` for
    ``expiring`` events is read by the ``warn_days`` filter)."""

    kind: str  # failure | renewal | expiring
    certificate: str | None
    title: str
    text: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "source": "alicertd",
            "kind": self.kind,
            "certificate": self.certificate,
            "title": self.title,
            "text": self.text,
            "details": dict(self.details),
            "time": now.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        }


# --------------------------------------------------------------------------- signing & redaction


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's robot signature (base64, not yet URL-encoded)."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    return base64.b64encode(hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu/Lark's bot signature: the HMAC *key* is ``timestamp\\nsecret``, the message empty."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def redact_url(url: str) -> str:
    """``https://oapi.dingtalk.com/…``: scheme and host only; path and query may hold tokens."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port:
            host = f"{host}:{parts.port}"
        tail = "/…" if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
        return f"{parts.scheme}://{host}{tail}"
    except ValueError:
        return "<unparseable url>"


def _scrub(message: str, url: str) -> str:
    """Remove every piece of ``url`` beyond its host from an error message (requests puts the
    path and query in its exception texts)."""
    parts = urlsplit(url)
    pieces = [url, parts.path + ("?" + parts.query if parts.query else ""), parts.query, parts.path]
    pieces += [v for v in parts.query.split("&") if v]
    for piece in sorted({p for p in pieces if p and p != "/"}, key=len, reverse=True):
        message = message.replace(piece, "…")
    return message


# --------------------------------------------------------------------------- payloads


def _detail_lines(details: Mapping[str, Any]) -> list[str]:
    return [f"{k}: {v}" for k, v in details.items() if v is not None and v != ""]


def _truncate_utf8(text: str, limit: int) -> str:
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode(errors="ignore") + "…"


def build_request(cfg: NotifyConfig, event: Event, now: float) -> tuple[str, dict[str, Any]]:
    """The URL to POST to and the JSON body, for ``cfg.kind``. ``now`` is Unix time (signing)."""
    lines = _detail_lines(event.details)
    if cfg.kind == "dingtalk":
        text = f"### {event.title}\n\n{event.text}"
        if lines:
            text += "\n\n" + "\n".join(f"- {line}" for line in lines)
        url = cfg.url
        if cfg.secret:
            ts = int(now * 1000)
            sep = "&" if "?" in url else "?"
            url = f"{url}{sep}{urlencode({'timestamp': ts, 'sign': dingtalk_sign(cfg.secret, ts)})}"
        return url, {"msgtype": "markdown", "markdown": {"title": event.title, "text": text}}
    if cfg.kind == "feishu":
        text = "\n".join([event.title, event.text, *lines])
        body: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
        if cfg.secret:
            ts = int(now)
            body = {"timestamp": str(ts), "sign": feishu_sign(cfg.secret, ts), **body}
        return cfg.url, body
    if cfg.kind == "wecom":
        content = f"**{event.title}**\n{event.text}"
        if lines:
            content += "\n" + "\n".join(f"> {line}" for line in lines)
        return cfg.url, {"msgtype": "markdown", "markdown": {"content": _truncate_utf8(content, WECOM_MAX_BYTES)}}
    if cfg.kind == "webhook":
        return cfg.url, event.as_json(datetime.fromtimestamp(now, UTC))
    raise ValueError(f"unknown notify kind {cfg.kind!r}")


def _robot_error(kind: str, resp: requests.Response) -> str | None:
    """The robot's own error from a 200 answer, or None when it accepted the message."""
    if kind == "webhook":
        return None
    try:
        body = resp.json()
    except ValueError:
        return None  # not JSON: trust the status code
    if not isinstance(body, dict):
        return None
    for code_key, msg_key in (("errcode", "errmsg"), ("code", "msg"), ("StatusCode", "StatusMessage")):
        code = body.get(code_key)
        if code not in (None, 0, "0"):
            return f"{code_key} {code}: {body.get(msg_key, '')}"[:200]
    return None


# --------------------------------------------------------------------------- notifier


class Notifier:
    """Sends each :class:`Event` to every ``[[notify]]`` block that subscribed to its kind.

    ``expiring`` events go only to blocks whose ``warn_days`` covers ``details["days_left"]``.
    ``send`` blocks for at most about 2 × timeout + retry delay per block and never raises; it
    returns how many blocks accepted the message. ``clock``, ``sleep`` and ``session`` are
    injectable for tests.
    """

    def __init__(self, configs: Iterable[NotifyConfig], log: logging.Logger | logging.LoggerAdapter, *,
                 timeout: float = TIMEOUT, retry_delay: float = RETRY_DELAY,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], object] = time.sleep,
                 session: requests.Session | None = None):
        self.configs = tuple(configs)
        self.log = log
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.clock = clock
        self.sleep = sleep
        self.session = session or requests.Session()

    def wants(self, cfg: NotifyConfig, event: Event) -> bool:
        if event.kind not in cfg.events:
            return False
        if event.kind == "expiring":
            days_left = event.details.get("days_left")
            return days_left is None or days_left <= cfg.warn_days
        return True

    def send(self, event: Event) -> int:
        delivered = 0
        for index, cfg in enumerate(self.configs):
            if not self.wants(cfg, event):
                continue
            try:
                if self._send_one(index, cfg, event):
                    delivered += 1
            except Exception as exc:  # never let a notification break the caller
                self.log.warning("notify[%d] (%s): unexpected error %s", index, cfg.kind, type(exc).__name__)
        return delivered

    def _send_one(self, index: int, cfg: NotifyConfig, event: Event) -> bool:
        where = f"notify[{index}] ({cfg.kind} {redact_url(cfg.url)})"
        last_error = ""
        for attempt in (1, 2):
            if attempt == 2:
                self.sleep(self.retry_delay)
            url, body = build_request(cfg, event, self.clock())  # re-signed on retry
            try:
                resp = self.session.post(
                    url, data=json.dumps(body, ensure_ascii=False, default=str).encode(),
                    headers={"Content-Type": "application/json; charset=utf-8"},
                    timeout=self.timeout, allow_redirects=False,
                )
            except requests.RequestException as exc:
                last_error = f"{type(exc).__name__}: {_scrub(str(exc), url)}"
                continue
            if resp.status_code >= 500 or resp.status_code == 429:
                last_error = f"HTTP {resp.status_code}"
                continue
            if resp.status_code >= 300:
                last_error = f"HTTP {resp.status_code}"
                break  # a 4xx will not get better by asking again
            robot_error = _robot_error(cfg.kind, resp)
            if robot_error:
                last_error = f"rejected: {_scrub(robot_error, url)}"
                break
            self.log.debug("%s: sent %s event", where, event.kind)
            return True
        self.log.warning("%s: could not send %s event: %s", where, event.kind, last_error)
        return False
