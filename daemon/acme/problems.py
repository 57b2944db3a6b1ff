"""ACME problem documents (RFC 8555 §6.7, RFC 7807) as typed exceptions.

One table, :data:`PROBLEM_TYPES`, maps every ``urn:ietf:params:acme:error:*`` type to its
exception class; whether a failure is retryable is decided there, once. ``retryable`` means:
the same request, unchanged, may succeed later (a transient condition on the CA's or the
network's side); it never means "retry at once".

Every message is one line: ``acme: <type>: <detail> [<identifier>] (<METHOD URL> -> HTTP <status>)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ACME_ERROR_PREFIX = "urn:ietf:params:acme:error:"


@dataclass(frozen=True)
class Subproblem:
    """One entry of a problem's ``subproblems`` (RFC 8555 §6.7.1)."""

    type: str
    detail: str
    identifier: str | None

    def __str__(self) -> str:
        where = f" [{self.identifier}]" if self.identifier else ""
        return f"{_short(self.type)}: {self.detail}{where}"


class AcmeError(Exception):
    """An ACME request failed. Attributes: ``type`` (the full URN, or a pseudo type for failures
    that carry no problem document), ``detail``, ``status`` (HTTP status or None), ``url``,
    ``identifier`` (the identifier the problem is about, if any), ``subproblems``,
    ``retry_after`` (seconds the server asked us to wait, if it said)."""

    retryable = False
    acme_type = "about:blank"

    def __init__(self, detail: str, *, type: str | None = None, status: int | None = None,
                 url: str | None = None, identifier: str | None = None,
                 subproblems: tuple[Subproblem, ...] = (), method: str | None = None,
                 retry_after: float | None = None):
        self.type = type or self.acme_type
        self.retry_after = retry_after  # seconds, from the response's Retry-After header
        self.detail = " ".join(str(detail).split()) or "(no detail)"
        self.status = status
        self.url = url
        self.method = method
        self.identifier = identifier
        self.subproblems = tuple(subproblems)
        self.order_url: str | None = None  # set when the error ended an order (issue.py)
        # newOrder only: the account's orders list, read after this error, shows that the CA
        # created no order for the request (orders.py), so a different order is no blind repeat.
        self.nothing_created = False
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"acme: {_short(self.type)}: {self.detail}"
        if self.identifier:
            text += f" [{self.identifier}]"
        if self.subproblems:
            text += "; " + "; ".join(str(s) for s in self.subproblems)
        if self.url:
            where = f"{self.method} {self.url}" if self.method else self.url
            text += f" ({where} -> HTTP {self.status})" if self.status else f" ({where})"
        return text

    def with_identifier(self, identifier: str) -> AcmeError:
        """The same error about ``identifier`` (for a challenge error seen in an authorization)."""
        self.identifier = identifier
        self.args = (self._message(),)
        return self


class AcmeProtocolError(AcmeError):
    """The server answered something RFC 8555 does not allow here (not JSON, a field missing,
    an unexpected status). Not retryable: the same server will answer the same way."""

    acme_type = "protocol"


class AcmeUnreachable(AcmeError):
    """The server could not be reached, or timed out, after the bounded retries."""

    acme_type = "unreachable"
    retryable = True
    unsent = False  # True when the request certainly never reached the server (connect failed)


class AcmeTimeout(AcmeError):
    """A wait (polling an authorization or an order) passed its deadline."""

    acme_type = "timeout"
    retryable = True


class AcmeConfigError(AcmeError):
    """The configuration asks for something this CA does not offer or requires something the
    configuration lacks (a profile not offered, EAB required but not configured). The message
    names the config key."""

    acme_type = "config"


# ----------------------------------------------------------------- RFC 8555 §6.7 error types


class AccountDoesNotExist(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "accountDoesNotExist"


class AlreadyRevoked(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "alreadyRevoked"


class AlreadyReplaced(AcmeError):
    """RFC 9773 §5: the certificate named in ``replaces`` was already replaced."""

    acme_type = ACME_ERROR_PREFIX + "alreadyReplaced"


class BadCsr(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "badCSR"


class BadNonce(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "badNonce"
    retryable = True


class BadPublicKey(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "badPublicKey"


class BadRevocationReason(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "badRevocationReason"


class BadSignatureAlgorithm(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "badSignatureAlgorithm"


class Caa(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "caa"


class Compound(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "compound"


class ConnectionProblem(AcmeError):
    """The CA could not connect to the validation target (RFC 8555 ``connection``)."""

    acme_type = ACME_ERROR_PREFIX + "connection"
    retryable = True


class Dns(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "dns"
    retryable = True


class ExternalAccountRequired(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "externalAccountRequired"


class IncorrectResponse(AcmeError):
    """The TXT value the CA saw was not the expected one. Retryable: with DNS-01 this is most
    often a resolver still holding the old answer."""

    acme_type = ACME_ERROR_PREFIX + "incorrectResponse"
    retryable = True


class InvalidContact(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "invalidContact"


class InvalidProfile(AcmeError):
    """draft-aaron-acme-profiles: the profile requested in newOrder is not offered."""

    acme_type = ACME_ERROR_PREFIX + "invalidProfile"


class Malformed(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "malformed"


class OrderNotReady(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "orderNotReady"


class RateLimited(AcmeError):
    """``retry_after`` (seconds) comes from the response's Retry-After header, when given."""

    acme_type = ACME_ERROR_PREFIX + "rateLimited"
    retryable = True


class RejectedIdentifier(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "rejectedIdentifier"


class ServerInternal(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "serverInternal"
    retryable = True


class Tls(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "tls"
    retryable = True


class Unauthorized(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "unauthorized"


class UnsupportedContact(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "unsupportedContact"


class UnsupportedIdentifier(AcmeError):
    acme_type = ACME_ERROR_PREFIX + "unsupportedIdentifier"


class UserActionRequired(AcmeError):
    """``tos_url`` is the ``Link: rel="terms-of-service"`` target, ``instance`` the page that
    tells the user what to do (RFC 8555 §7.3.3)."""

    acme_type = ACME_ERROR_PREFIX + "userActionRequired"

    def __init__(self, detail: str, *, tos_url: str | None = None, instance: str | None = None,
                 **kw: Any):
        self.tos_url = tos_url
        self.instance = instance
        if tos_url:
            detail = f"{detail} (terms of service: {tos_url})"
        super().__init__(detail, **kw)


# The one table. Unknown ACME types become a plain AcmeError, retryable only for HTTP 5xx.
PROBLEM_TYPES: dict[str, type[AcmeError]] = {
    cls.acme_type: cls
    for cls in (
        AccountDoesNotExist, AlreadyRevoked, AlreadyReplaced, BadCsr, BadNonce, BadPublicKey,
        BadRevocationReason, BadSignatureAlgorithm, Caa, Compound, ConnectionProblem, Dns,
        ExternalAccountRequired, IncorrectResponse, InvalidContact, InvalidProfile, Malformed,
        OrderNotReady, RateLimited, RejectedIdentifier, ServerInternal, Tls, Unauthorized,
        UnsupportedContact, UnsupportedIdentifier, UserActionRequired,
    )
}


def is_retryable(error: BaseException) -> bool:
    return bool(getattr(error, "retryable", False))


def problem_from_json(doc: Mapping[str, Any], *, status: int | None = None, url: str | None = None,
                      method: str | None = None, retry_after: float | None = None,
                      tos_url: str | None = None) -> AcmeError:
    """The typed exception for a problem document (also used for ``error`` fields of challenges
    and orders, where ``status``/``url`` are unknown)."""
    if not isinstance(doc, Mapping):
        return AcmeProtocolError(f"problem document is not an object: {doc!r:.200}", status=status,
                                 url=url, method=method)
    ptype = str(doc.get("type") or "about:blank")
    detail = str(doc.get("detail") or doc.get("title") or "(no detail)")
    subproblems = tuple(
        Subproblem(type=str(sp.get("type") or "about:blank"), detail=str(sp.get("detail") or ""),
                   identifier=_identifier_value(sp.get("identifier")))
        for sp in doc.get("subproblems") or () if isinstance(sp, Mapping)
    )
    kw: dict[str, Any] = dict(type=ptype, status=status, url=url, method=method, retry_after=retry_after,
                              identifier=_identifier_value(doc.get("identifier")), subproblems=subproblems)
    cls = PROBLEM_TYPES.get(ptype)
    if cls is UserActionRequired:
        instance = doc.get("instance")
        return UserActionRequired(detail, tos_url=tos_url, instance=instance if isinstance(instance, str) else None,
                                  **kw)
    if cls is None:
        error = AcmeError(detail, **kw)
        error.retryable = status is not None and status >= 500
        return error
    return cls(detail, **kw)


def _identifier_value(ident: Any) -> str | None:
    if isinstance(ident, Mapping) and ident.get("value"):
        return str(ident["value"])
    return None


def _short(ptype: str) -> str:
    return ptype[len(ACME_ERROR_PREFIX):] if ptype.startswith(ACME_ERROR_PREFIX) else ptype
