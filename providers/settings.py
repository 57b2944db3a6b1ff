"""A small reader for one config table that records every problem by key path.

Shared by the core config loader and by provider plugins, so that a third-party provider gets
the same one-line, path-named errors (``certificate[0].deploy[1].group_id: missing required
key``) without writing its own checks. Reading a key marks it as known; ``finish()`` reports
every key nobody asked for as unknown.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from daemon.domains import normalize_domain
from daemon.durations import parse_duration

_MISSING = object()


class _Unset:
    """A value whose ``${VAR}`` was not set: already reported by the loader, so every
    getter treats it as absent instead of adding a second, misleading error."""

    def __repr__(self) -> str:
        return "<unset environment variable>"


UNSET = _Unset()


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _type_name(value: object) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


class Section:
    """Typed access to one TOML table. Every getter returns ``default`` after recording an
    error, so the caller keeps going and all problems of a file surface in one run."""

    def __init__(self, raw: object, path: str, errors: Any):
        self.path = path
        self.errors = errors
        self.valid = isinstance(raw, Mapping)
        if not self.valid:
            errors.add(path, f"expected a table, got {_type_name(raw)}")
        self.raw: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        self._seen: set[str] = set()

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> None:
        self.errors.add(self.key_path(key), message)

    def has(self, key: str) -> bool:
        return key in self.raw

    def _get(self, key: str, required: bool) -> Any:
        self._seen.add(key)
        if key not in self.raw:
            if required:
                self.error(key, "missing required key")
            return _MISSING
        if self.raw[key] is UNSET:
            return _MISSING
        return self.raw[key]

    def str(self, key: str, default: Any = None, *, required: bool = False,
            choices: tuple[str, ...] | None = None, nonempty: bool = True) -> Any:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            self.error(key, f"expected a string, got {_type_name(value)}")
            return default
        if nonempty and not value.strip():
            self.error(key, "must not be empty")
            return default
        if choices is not None and value not in choices:
            self.error(key, f"invalid value {value!r} (expected one of: {', '.join(choices)})")
            return default
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.error(key, f"expected true or false, got {_type_name(value)}")
            return default
        return value

    def int(self, key: str, default: Any = None, *, required: bool = False,
            minimum: int | None = None, maximum: int | None = None) -> Any:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"expected an integer, got {_type_name(value)}")
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            lo = "" if minimum is None else f"{minimum}"
            hi = "" if maximum is None else f"{maximum}"
            self.error(key, f"{value} is out of range ({lo}..{hi})")
            return default
        return value

    def duration(self, key: str, default: float | None, *, minimum: float = 0.0) -> Any:
        value = self._get(key, False)
        if value is _MISSING:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.error(key, str(exc))
            return default
        if seconds < minimum:
            self.error(key, f"{value!r} is too short (at least {minimum:g}s)")
            return default
        return seconds

    def str_list(self, key: str, default: Any = (), *, required: bool = False,
                 nonempty: bool = False) -> Any:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, list):
            self.error(key, f"expected a list of strings, got {_type_name(value)}")
            return default
        if nonempty and not value:
            self.error(key, "must not be an empty list")
            return default
        good = True
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.errors.add(f"{self.key_path(key)}[{i}]",
                                "expected a non-empty string" if isinstance(item, str)
                                else f"expected a string, got {_type_name(item)}")
                good = False
        return tuple(value) if good else default

    def domain(self, key: str, *, required: bool = False, allow_wildcard: bool = True) -> str | None:
        """One domain name, IDNA-normalised to ASCII (see daemon.domains)."""
        text = self.str(key, None, required=required)
        if text is None:
            return None
        try:
            return normalize_domain(text, allow_wildcard=allow_wildcard)
        except ValueError as exc:
            self.error(key, str(exc))
            return None

    def domains(self, key: str, *, required: bool = False, nonempty: bool = False) -> tuple[str, ...]:
        """A list of domain names, normalised, each problem named by its index; duplicates
        (after normalisation: ``Example.COM`` is ``example.com``) are errors."""
        found: list[str] = []
        for i, text in enumerate(self.str_list(key, (), required=required, nonempty=nonempty)):
            try:
                name = normalize_domain(text)
            except ValueError as exc:
                self.errors.add(f"{self.key_path(key)}[{i}]", str(exc))
                continue
            if name in found:
                self.errors.add(f"{self.key_path(key)}[{i}]", f"duplicate domain {text!r}")
                continue
            found.append(name)
        return tuple(found)

    def url(self, key: str, default: Any = None, *, required: bool = False,
            http_loopback_only: bool = True) -> Any:
        """An absolute http(s) URL; plain http only for loopback hosts when
        ``http_loopback_only`` (our requests carry private keys)."""
        value = self.str(key, _MISSING, required=required)
        if value is _MISSING or value is None:
            return default
        return check_url(self, key, value, http_loopback_only=http_loopback_only) or default

    def host_port(self, key: str, default: Any = None, *, default_port: int | None = None) -> Any:
        value = self.str(key, _MISSING)
        if value is _MISSING or value is None:
            return default
        if parse_host_port(value, default_port) is None:
            self.error(key, f"invalid address {value!r} (expected host:port)")
            return default
        return value

    def account(self, known: Collection[str] = ("default",), key: str = "account") -> str:
        """The account entry a deploy block's target lives in: ``default`` ([aliyun]) unless
        the block says ``account = "NAME"`` for an [aliyun.accounts.NAME]. Every provider reads
        it through here (pass ``ConfigDefaults.accounts``), so the key means the same everywhere."""
        name = self.str(key, "default")
        if name is None:
            return "default"
        if name not in known:
            self.error(key, f"unknown account {name!r} (known: {', '.join(known)})")
            return "default"
        return name

    def table(self, key: str) -> Section:
        value = self._get(key, False)
        return Section({} if value is _MISSING else value, self.key_path(key), self.errors)

    def finish(self) -> None:
        for key in self.raw:
            if key not in self._seen:
                self.error(key, "unknown key")


def check_url(section: Section, key: str, value: str, *, http_loopback_only: bool = True) -> str | None:
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a bad port
        del port
    except ValueError:
        section.error(key, f"invalid URL {value!r}")
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        section.error(key, f"invalid URL {value!r} (expected https://host/...)")
        return None
    if parts.scheme == "http" and http_loopback_only and not is_loopback_host(parts.hostname):
        section.error(key, f"{value!r}: https is required (plain http only for loopback addresses)")
        return None
    return value


def parse_host_port(value: str, default_port: int | None = None) -> tuple[str, int] | None:
    """``host:port``, ``[v6]:port`` or, with a default port, a bare host."""
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep or (rest and not rest.startswith(":")):
            return None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:  # bare IPv6 address
        host, port_text = text, ""
    else:
        host, port_text = text, ""
    if not host:
        return None
    if not port_text:
        return (host, default_port) if default_port is not None else None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return host, int(port_text)
