"""The RFC 8555 resources as typed, frozen values, and the parsing of the CA's JSON into them.

Kept apart from the requests so that every verb module returns the same types and a malformed
object is refused in one place: a field of the wrong type raises AcmeProtocolError naming the
field, never a str() of a list posing as a URL.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.acme.problems import AcmeError, AcmeProtocolError, problem_from_json
from daemon.acme.transport import Response
from daemon.keys import split_pem_chain

# ----------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class Identifier:
    type: str
    value: str

    @classmethod
    def dns(cls, name: str) -> Identifier:
        return cls("dns", name)

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value}


@dataclass(frozen=True)
class ExternalAccountBinding:
    """The CA-issued key id and base64url MAC key (RFC 8555 §7.3.4)."""

    kid: str
    hmac_key: str = field(repr=False)


@dataclass(frozen=True)
class Account:
    url: str
    status: str  # valid | deactivated | revoked
    contact: tuple[str, ...] = ()
    orders_url: str | None = None
    terms_of_service_agreed: bool | None = None
    created: bool = False  # True when this request made it (HTTP 201)


@dataclass(frozen=True)
class Challenge:
    type: str
    url: str
    status: str  # pending | processing | valid | invalid
    token: str | None = None
    validated: str | None = None
    error: AcmeError | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Authorization:
    url: str
    status: str  # pending | valid | invalid | deactivated | expired | revoked
    identifier: Identifier
    challenges: tuple[Challenge, ...] = ()
    wildcard: bool = False
    expires: dt.datetime | None = None

    @property
    def domain(self) -> str:
        """The name as it was ordered (``*.`` restored for a wildcard authorization)."""
        return f"*.{self.identifier.value}" if self.wildcard else self.identifier.value

    def challenge(self, type: str) -> Challenge | None:
        return next((c for c in self.challenges if c.type == type), None)

    def problem(self) -> AcmeError | None:
        """The error of the first failed challenge, about this authorization's domain."""
        for chall in self.challenges:
            if chall.error is not None:
                return chall.error.with_identifier(self.domain)
        return None


@dataclass(frozen=True)
class Order:
    url: str
    status: str  # pending | ready | processing | valid | invalid
    identifiers: tuple[Identifier, ...]
    authorizations: tuple[str, ...]
    finalize: str
    certificate: str | None = None
    expires: dt.datetime | None = None
    error: AcmeError | None = field(default=None, compare=False)
    replaces: str | None = None
    profile: str | None = None


@dataclass(frozen=True)
class CertificateChain:
    """A downloaded chain: PEM blocks leaf first; ``alternates`` are the URLs of the other
    chains the CA offers for the same certificate (``Link: rel="alternate"``, RFC 8555 §7.4.2)."""

    url: str
    pem: str
    alternates: tuple[str, ...] = ()

    @property
    def top_issuer_cn(self) -> str | None:
        """The issuer CN of the last certificate: the root this chain leads to."""
        from daemon.keys import certificate_info

        return certificate_info(split_pem_chain(self.pem)[-1]).issuer_cn


@dataclass(frozen=True)
class RenewalInfo:
    """RFC 9773 §4.2: renew at a time inside [start, end]. ``retry_after``: seconds until the
    CA wants to be asked again."""

    start: dt.datetime
    end: dt.datetime
    explanation_url: str | None = None
    retry_after: float | None = None


# ----------------------------------------------------------------------------- parsing


def parse_account(url: str, response: Response, *, created: bool = False) -> Account:
    """An account object; an empty body (allowed after keyChange) reads as a valid account."""
    data = response.json() if response.body.strip() else {}
    contact = data.get("contact") or ()
    return Account(
        url=url,
        status=str(data.get("status") or "valid"),
        contact=tuple(str(c) for c in contact) if isinstance(contact, list) else (),
        orders_url=data.get("orders") if isinstance(data.get("orders"), str) else None,
        terms_of_service_agreed=data.get("termsOfServiceAgreed"),
        created=created,
    )


def parse_order(url: str, response: Response) -> Order:
    data = response.json()
    try:
        identifiers = tuple(Identifier(_str(i, "type"), _str(i, "value")) for i in _list(data, "identifiers"))
        authorizations = tuple(_str_item(a, "authorizations") for a in _list(data, "authorizations"))
        certificate = data.get("certificate")
        if certificate is not None and not isinstance(certificate, str):
            raise TypeError("'certificate'")
        return Order(
            url=url,
            status=_str(data, "status"),
            identifiers=identifiers,
            authorizations=authorizations,
            finalize=_str(data, "finalize"),
            certificate=certificate,
            expires=parse_time(data.get("expires")),
            error=problem_from_json(data["error"]) if isinstance(data.get("error"), Mapping) else None,
            replaces=data.get("replaces"),
            profile=data.get("profile"),
        )
    except (KeyError, TypeError) as exc:
        raise AcmeProtocolError(f"malformed order object (missing or bad {exc})", url=url,
                                status=response.status) from None


def parse_authorization(url: str, response: Response) -> Authorization:
    data = response.json()
    try:
        ident = data["identifier"]
        return Authorization(
            url=url,
            status=_str(data, "status"),
            identifier=Identifier(_str(ident, "type"), _str(ident, "value")),
            challenges=tuple(parse_challenge(c, url) for c in _list(data, "challenges", default=[])),
            wildcard=data.get("wildcard") is True,
            expires=parse_time(data.get("expires")),
        )
    except (KeyError, TypeError) as exc:
        raise AcmeProtocolError(f"malformed authorization object (missing or bad {exc})", url=url,
                                status=response.status) from None


def parse_challenge(data: Mapping[str, Any], where: str) -> Challenge:
    try:
        return Challenge(
            type=_str(data, "type"),
            url=_str(data, "url"),
            status=_str(data, "status"),
            token=data.get("token"),
            validated=data.get("validated"),
            error=problem_from_json(data["error"]) if isinstance(data.get("error"), Mapping) else None,
        )
    except (KeyError, TypeError) as exc:
        raise AcmeProtocolError(f"malformed challenge object (missing or bad {exc})", url=where) from None


def _str(data: Any, name: str) -> str:
    """``data[name]`` when ``data`` is an object and the value a string. A server that sends
    another type is broken: str() would turn a list into a URL (``"['https://…']"``) and a
    string iterated as a list into one-letter URLs. KeyError/TypeError name the field; the
    parsers turn them into AcmeProtocolError."""
    if not isinstance(data, Mapping):
        raise TypeError(repr(name))
    return _str_item(data[name], name)


def _str_item(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(repr(name))
    return value


def _list(data: Mapping[str, Any], name: str, default: list | None = None) -> list:
    value = data.get(name) if default is not None else data[name]
    if value is None and default is not None:
        return default
    if not isinstance(value, list):
        raise TypeError(repr(name))
    return value


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 time as an aware UTC datetime (nanosecond fractions cut to microseconds)."""
    if not isinstance(value, str) or not value:
        return None
    text = _FRACTION.sub(r"\1", value.strip())
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)

