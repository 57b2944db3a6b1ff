"""What every emulated product shares: the call object, the product descriptor, and parameter
parsing that fails the way the gateway does (``Missing<Name>``, ``InvalidParameter``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import ApiError, invalid_param, missing
from ..state import World


@dataclass
class Call:
    """One authenticated API call as a handler sees it. The world lock is held throughout."""

    world: World
    params: dict[str, str]
    region: str
    now: float
    method: str = "POST"


Handler = Callable[[Call], dict]


@dataclass(frozen=True)
class Product:
    name: str  # product code as in the SDK: Alidns, Cdn, CloudAPI
    version: str
    ram_prefix: str  # alidns, cdn, apigateway
    host_pattern: str  # HostId in error bodies; {region} is filled in
    actions: dict[str, Handler] = field(default_factory=dict)

    def host_id(self, region: str) -> str:
        return self.host_pattern.format(region=region or "cn-hangzhou")


def required(call: Call, name: str) -> str:
    value = call.params.get(name)
    if value is None or value == "":
        raise missing(name)
    return value


def optional(call: Call, name: str, default: str | None = None) -> str | None:
    value = call.params.get(name)
    return default if value is None or value == "" else value


def int_param(call: Call, name: str, default: int | None, lo: int | None = None,
              hi: int | None = None) -> int | None:
    raw = call.params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param(name, "It must be an integer.") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"{lo if lo is not None else ''}-{hi if hi is not None else ''}"
        raise invalid_param(name, f"Valid range: {bounds}.")
    return value


def paging(call: Call, default_size: int, max_size: int, number_max: int = 100000) -> tuple[int, int]:
    number = int_param(call, "PageNumber", 1, 1, number_max)
    size = int_param(call, "PageSize", default_size, 1, max_size)
    return number, size


def page_of(items: Sequence, number: int, size: int) -> list:
    start = (number - 1) * size
    return list(items[start:start + size])


def enum_param(call: Call, name: str, allowed: Sequence[str], default: str | None,
               code: str | None = None) -> str | None:
    value = optional(call, name, default)
    if value is not None and value not in allowed:
        if code:
            raise ApiError(400, code, f"The specified {name} {value!r} is not supported.")
        raise invalid_param(name, f"Valid values: {', '.join(allowed)}.")
    return value


def iso(ts: float | dt.datetime) -> str:
    if isinstance(ts, dt.datetime):
        return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def spaced(ts: float | dt.datetime) -> str:
    """``2018-12-26 14:45:09`` (UTC; the real service does not say which zone it uses)."""
    if isinstance(ts, dt.datetime):
        return ts.strftime("%Y-%m-%d %H:%M:%S")
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def epoch_ms(d: dt.datetime) -> int:
    return int(d.replace(tzinfo=dt.UTC).timestamp() * 1000)


def wildcard_api_name(domain: str) -> str:
    """An accelerated domain as CDN and DCDN name it: a wildcard ``*.example.com`` is
    ``.example.com`` ("the domain name must start with a period"); lowercase, no final dot.
    Admin calls and fixtures may use either spelling."""
    domain = domain.strip().lower().rstrip(".")
    return domain[1:] if domain.startswith("*.") else domain
