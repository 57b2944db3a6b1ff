"""Logging set up once, for the journal, for people, or for log shippers, and never leaking secrets.

Formats:

- ``text`` under systemd's journal (``$JOURNAL_STREAM`` names our stderr): ``<6>[www] message``.
  The ``<N>`` prefix is the sd-daemon(3) syslog priority, which journald parses into the entry's
  PRIORITY; the journal stamps the time itself, so a timestamp would only be noise.
- ``text`` elsewhere: ``2026-11-26T10:00:00Z INFO [www] message`` (UTC, to the second).
- ``json``: one object per line: ``ts``, ``level``, ``logger``, ``msg``, plus ``certificate`` and
  any other ``extra`` fields (``provider``, ``target``, …), and ``exc`` for a traceback.

Every line about a certificate carries its name: log through :func:`cert_logger`.

Secrets: the Alibaba Cloud SDK logs whole request parameters at DEBUG, private keys included
(CDN ``SetCdnDomainSSLCertificate`` sends ``SSLPri``), and urllib3 logs request lines whose
query strings hold robot tokens. :func:`setup_logging` clamps those loggers to WARNING/INFO
whatever ``--log-level`` says, and a :class:`RedactingFilter` on the handler replaces every
value given to :func:`register_secret` with ``***``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

REDACTED = "***"
MIN_SECRET_LEN = 6  # shorter values would redact ordinary words

#: logger name -> the lowest level it may log at, whatever the configured level.
CLAMPED_LOGGERS = {
    # request params (private keys) at DEBUG; at ERROR a "ServerException occurred" line for
    # every failed call, which we report ourselves, once and better worded
    "aliyunsdkcore": logging.CRITICAL,
    "urllib3": logging.INFO,  # "POST /robot/send?access_token=…" at DEBUG
    "apscheduler": logging.WARNING,  # "Running job …" twice per cycle at INFO
}

_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}

# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message", "asctime", "taskName"}


# --------------------------------------------------------------------------- secrets


_secrets_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def register_secret(value: str | bytes | None) -> None:
    """Redact ``value`` from every log record from now on.

    For a PEM block the base64 body is registered line by line (and joined), so the key is
    hidden however it is wrapped; header lines stay readable.
    """
    global _secrets
    if value is None:
        return
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    pieces = {value.strip()}
    if "-----BEGIN" in value:
        body = [ln.strip() for ln in value.splitlines()
                if ln.strip() and not ln.startswith("-----") and ":" not in ln]
        pieces = {ln for ln in body if len(ln) >= 16}
        if body:
            pieces.add("".join(body))
    pieces = {p for p in pieces if len(p) >= MIN_SECRET_LEN}
    if not pieces:
        return
    with _secrets_lock:
        _secrets = tuple(sorted(set(_secrets) | pieces, key=len, reverse=True))


def clear_secrets() -> None:
    """Forget all registered secrets (tests, and a reload that replaced credentials)."""
    global _secrets
    with _secrets_lock:
        _secrets = ()


def redact(text: str) -> str:
    for secret in _secrets:  # longest first, so a secret containing another is hidden whole
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Replaces registered secrets in the message (after %-formatting with its args) and in
    string ``extra`` fields. Attach it to handlers: a filter on a logger does not see records
    propagated from its children."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            try:
                message = record.getMessage()
            except Exception:  # a broken format string: keep the raw parts, redacted
                message = f"{record.msg} {record.args}"
            record.msg = redact(message)
            record.args = None
            for key, value in list(vars(record).items()):
                if key not in _STANDARD_ATTRS and isinstance(value, (str, Mapping, list, tuple)):
                    setattr(record, key, _redact_value(value))
        return True


class ClampFilter(logging.Filter):
    """Drops records from the clamped loggers below their floor, even if a library lowered
    its own logger's level after :func:`setup_logging` (aliyunsdkcore's ``set_stream_logger``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, floor in CLAMPED_LOGGERS.items():
            if record.name == name or record.name.startswith(name + "."):
                return record.levelno >= floor
        return True


# --------------------------------------------------------------------------- formatters


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _utc_ms(ts: float) -> str:
    """Milliseconds for machine-read logs: timing questions (how long did propagation take?)
    can then be answered from the log alone."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """``2026-11-26T10:00:00Z INFO [www] message``, or ``<6>[www] message`` for the journal."""

    def __init__(self, journald: bool = False):
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        cert = getattr(record, "certificate", None)
        message = (f"[{cert}] " if cert else "") + record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            message += "\n" + record.exc_text
        if self.journald:
            prio = _SYSLOG_PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
            # journald splits on newlines; prefix each line so a traceback keeps its priority
            line = "\n".join(f"<{prio}>{ln}" for ln in message.split("\n"))
        else:
            line = f"{_utc(record.created)} {record.levelname} {message}"
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the ``extra`` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": _utc_ms(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            obj.setdefault(key, value)
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            obj["exc"] = record.exc_text
        obj = _redact_value(obj)
        return redact(json.dumps(obj, ensure_ascii=False, default=str))


# --------------------------------------------------------------------------- setup


def journal_stream_matches(stream: TextIO) -> bool:
    """True when ``$JOURNAL_STREAM`` (``device:inode``) names ``stream``'s file.

    sd-daemon(3) asks for this check rather than mere presence: the variable is inherited by
    children whose stderr may have been redirected to a file, where ``<6>`` would be garbage.
    """
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


_handler_marker = "_alicertd_handler"


def setup_logging(level: str = "info", fmt: str = "text", *, stream: TextIO | None = None,
                  journald: bool | None = None) -> logging.Handler:
    """Configure the root logger: one handler on ``stream`` (default stderr) with redaction.

    Safe to call again (a reload): the previous alicertd handler is replaced. ``journald``
    forces the journal text style on/off; by default it is detected from ``$JOURNAL_STREAM``.
    Returns the handler.
    """
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r} (text or json)")
    stream = stream if stream is not None else sys.stderr
    if journald is None:
        journald = journal_stream_matches(stream)

    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(journald=journald))
    handler.addFilter(ClampFilter())
    handler.addFilter(RedactingFilter())
    setattr(handler, _handler_marker, True)

    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _handler_marker, False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    clamp_library_loggers(numeric)
    return handler


def clamp_library_loggers(level: int = logging.NOTSET) -> None:
    """Raise the clamped loggers (and every existing child) to at least their floor.

    ``aliyunsdkcore.http.http_response`` sets its own logger to DEBUG and gives it a bare stderr
    handler at import time (printing with ``DEBUG=sdk``), past any root handler and its
    redaction. It is imported here first so that its import cannot undo the clamp later; its
    private handlers are removed so everything goes through ours.
    """
    with contextlib.suppress(ImportError):
        import aliyunsdkcore.http.http_response  # noqa: F401 - for its import-time side effects
    manager = logging.Logger.manager
    for name, floor in CLAMPED_LOGGERS.items():
        names = [name] + [n for n in list(manager.loggerDict) if n.startswith(name + ".")]
        for logger_name in names:
            logger = logging.getLogger(logger_name)
            if logger_name != name:
                logger.setLevel(logging.NOTSET if logger.level < floor else logger.level)
            for h in list(logger.handlers):
                if name == "aliyunsdkcore" and not isinstance(h, logging.NullHandler):
                    logger.removeHandler(h)
        logging.getLogger(name).setLevel(max(floor, level))


# --------------------------------------------------------------------------- adapters


class ContextAdapter(logging.LoggerAdapter):
    """A LoggerAdapter whose ``extra`` is merged with the call's own ``extra`` (the stdlib one
    before 3.13 throws the call's away), and which can be narrowed with :meth:`bind`."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**self.extra, **(kwargs.get("extra") or {})}
        return msg, kwargs

    def bind(self, **fields: Any) -> ContextAdapter:
        return ContextAdapter(self.logger, {**self.extra, **fields})


def cert_logger(name: str, logger: logging.Logger | str | None = None) -> ContextAdapter:
    """A logger whose every record carries ``certificate=name``.

    ``cert_logger("www").bind(provider="cdn", target="img.example.com")`` adds target fields.
    """
    if logger is None or isinstance(logger, str):
        logger = logging.getLogger(logger or "alicertd")
    return ContextAdapter(logger, {"certificate": name})
