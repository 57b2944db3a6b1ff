"""An ACME v2 client whose methods are the verbs of RFC 8555 (and RFC 9773 for ARI).

Each method is one request (or one poll loop) and returns a typed, frozen resource. Signing,
nonces, retries and problem documents live in ``transport.py``; the one flow that strings the
verbs together into an issuance is ``issue.py``.

Not thread-safe: use one AcmeClient per thread (they may share an account key and URL; the CA
serialises nothing per account that would make that unsafe).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from daemon.acme import jws
from daemon.acme.directory import Directory, fetch_directory
from daemon.acme.problems import (
    AcmeError,
    AcmeProtocolError,
    AcmeTimeout,
    AcmeUnreachable,
    AlreadyRevoked,
    OrderNotReady,
    problem_from_json,
)
from daemon.acme.transport import PEM_CHAIN, Response, Transport
from daemon.keys import PrivateKey, ari_cert_id, split_pem_chain

log = logging.getLogger(__name__)

# Seconds between polls when the server sends no Retry-After: front-loaded (Pebble and Let's
# Encrypt usually validate within a second), then settling at the last value.
POLL_INTERVALS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 5.0)
MIN_POLL_WAIT = 0.05  # seconds: the floor under every poll wait, whatever Retry-After says

# RFC 5280 §5.3.1 revocation reasons ACME accepts (RFC 8555 §7.6).
REVOCATION_REASONS = {
    "unspecified": 0, "keyCompromise": 1, "affiliationChanged": 3, "superseded": 4,
    "cessationOfOperation": 5,
}

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


# ----------------------------------------------------------------------------- client


class AcmeClient:
    """One account at one CA.

    ``account_key`` signs every request; ``account_url`` (the ``kid``) is set by
    ``new_account``/``find_account`` or given when known. ``clock`` (monotonic seconds) and
    ``sleep`` are injectable; every deadline argument is a ``clock()`` value.
    """

    def __init__(self, directory_url: str, account_key: PrivateKey, *, account_url: str | None = None,
                 ca_bundle: str | None = None, timeout: float = 30.0, transport: Transport | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 poll_intervals: Sequence[float] = POLL_INTERVALS):
        self.directory_url = directory_url
        self.account_key = account_key
        self.account_url = account_url
        self.transport = transport or Transport(ca_bundle=ca_bundle, timeout=timeout, clock=clock, sleep=sleep)
        self.clock = self.transport.clock
        self.sleep = self.transport.sleep
        self.poll_intervals = tuple(poll_intervals)
        self._directory: Directory | None = None

    @property
    def directory(self) -> Directory:
        """The CA's directory, fetched on first use and kept for this client's life."""
        if self._directory is None:
            self._directory = fetch_directory(self.transport, self.directory_url)
            self.transport.new_nonce_url = self._directory.new_nonce
        return self._directory

    @property
    def thumbprint(self) -> str:
        """RFC 7638 thumbprint of the account key (base64url)."""
        return jws.thumbprint(self.account_key)

    @property
    def round_trips(self) -> int:
        return self.transport.round_trips

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> AcmeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ §7.3 accounts

    def new_account(self, contact: Iterable[str] = (), tos_agreed: bool = False,
                    eab: ExternalAccountBinding | None = None) -> Account:
        """newAccount (§7.3). Returns the existing account (``created`` False) when the key is
        already registered."""
        url = self.directory.new_account
        payload: dict[str, Any] = {"contact": list(contact), "termsOfServiceAgreed": bool(tos_agreed)}
        if eab is not None:
            payload["externalAccountBinding"] = jws.eab_binding(
                jws.jwk(self.account_key), kid=eab.kid, hmac_key=eab.hmac_key, url=url)
        response = self._post(url, payload, use_kid=False)
        self.account_url = response.require_location()
        return _account(self.account_url, response, created=response.status == 201)

    def find_account(self) -> Account:
        """newAccount with ``onlyReturnExisting`` (§7.3.1): the account of this key, or
        AccountDoesNotExist. Never creates one."""
        response = self._post(self.directory.new_account, {"onlyReturnExisting": True}, use_kid=False)
        self.account_url = response.require_location()
        return _account(self.account_url, response)

    def account_info(self) -> Account:
        """POST-as-GET the account URL."""
        url = self._kid()
        return _account(url, self._post(url, None))

    def update_account(self, contact: Iterable[str]) -> Account:
        """Replace the contact list (§7.3.2)."""
        url = self._kid()
        return _account(url, self._post(url, {"contact": list(contact)}))

    def key_change(self, new_key: PrivateKey) -> Account:
        """Roll the account over to ``new_key`` (§7.3.5). Returns once the CA accepted; from
        then on this client signs with ``new_key`` and the caller must persist it.

        Nothing after the acceptance may raise (the caller would not know which key is
        current): the account is then read back best effort, and when that read fails the
        Account is what the keyChange response said (often nothing: contact unknown)."""
        url = self.directory.key_change
        if not url:
            raise AcmeProtocolError("the CA offers no keyChange", url=self.directory_url)
        account_url = self._kid()
        inner = jws.sign(new_key, {"account": account_url, "oldKey": jws.jwk(self.account_key)},
                         url=url, nonce=None, kid=None)
        response = self._post(url, inner, retry=False)
        self.account_key = new_key
        try:
            return self.account_info()
        except AcmeError as exc:
            log.warning("account key rolled over, but reading the account back failed: %s", exc)
            return _account(account_url, response)

    def deactivate_account(self) -> Account:
        """§7.3.6. Irreversible: the key can never be used for an account at this CA again."""
        url = self._kid()
        return _account(url, self._post(url, {"status": "deactivated"}))

    # ------------------------------------------------------------------ §7.4 orders

    def new_order(self, identifiers: Iterable[str | Identifier], replaces: str | None = None,
                  profile: str | None = None) -> Order:
        """newOrder (§7.4). ``replaces`` is the ARI id of the certificate this order renews
        (RFC 9773 §5); ``profile`` one of the directory's ``meta.profiles``."""
        self.directory.check_profile(profile)
        idents = [i if isinstance(i, Identifier) else Identifier.dns(i) for i in identifiers]
        payload: dict[str, Any] = {"identifiers": [i.to_json() for i in idents]}
        if replaces:
            payload["replaces"] = replaces
        if profile:
            payload["profile"] = profile
        response = self._post(self.directory.new_order, payload)
        return _order(response.require_location(), response)

    def get_order(self, url: str) -> Order:
        return _order(url, self._post(url, None))

    def get_authorization(self, url: str) -> Authorization:
        return _authorization(url, self._post(url, None))

    def answer_challenge(self, challenge: Challenge) -> Challenge:
        """Tell the CA the challenge is ready to be validated (§7.5.1)."""
        return _challenge(self._post(challenge.url, {}).json(), challenge.url)

    def poll_authorization(self, url: str, deadline: float) -> Authorization:
        """Fetch the authorization until it is no longer pending (valid, invalid, ...)."""
        return self._poll(lambda: self._fetch(url, _authorization), lambda a: a.status != "pending",
                          deadline, f"authorization {url}")

    def poll_order(self, order: Order | str, deadline: float) -> Order:
        """Fetch the order until it is neither pending nor processing (ready, valid, invalid)."""
        url = order if isinstance(order, str) else order.url
        return self._poll(lambda: self._fetch(url, _order), lambda o: o.status not in ("pending", "processing"),
                          deadline, f"order {url}")

    def finalize(self, order: Order, csr_der: bytes) -> Order:
        """Send the CSR (§7.4). The order is then ``processing`` or already ``valid``.

        Never sent twice blindly: when the answer is lost (a timeout, a dropped connection, a
        5xx) or the CA says ``orderNotReady``, the order is read back (POST-as-GET). Processing
        or valid means the CA took the CSR; still ``ready`` means it did not, and only then is
        the CSR sent once more."""
        payload = {"csr": jws.b64url(csr_der)}
        for attempt in range(2):
            try:
                return _order(order.url, self._post(order.finalize, payload, retry=False))
            except AcmeError as exc:
                if not (_maybe_processed(exc) or isinstance(exc, OrderNotReady)):
                    raise
                log.info("finalize of %s: %s; reading the order back", order.url, exc)
                current = self.get_order(order.url)
                if current.status in ("processing", "valid"):
                    return current
                if current.status != "ready" or attempt == 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def download_certificate(self, url: str) -> CertificateChain:
        """POST-as-GET the certificate chain (§7.4.2), with the URLs of alternate chains."""
        response = self._post(url, None, accept=PEM_CHAIN)
        pem = response.text()
        try:
            split_pem_chain(pem)
        except ValueError:
            raise AcmeProtocolError("the certificate URL served no PEM chain", url=url,
                                    status=response.status) from None
        return CertificateChain(url=url, pem=pem, alternates=tuple(response.links("alternate")))

    def deactivate_authorization(self, url: str) -> Authorization:
        """§7.5.2: give up an authorization (so an abandoned order leaves nothing pending)."""
        return _authorization(url, self._post(url, {"status": "deactivated"}))

    # ------------------------------------------------------------------ §7.6 revocation

    def revoke_certificate(self, cert_der: bytes, reason: int | str | None = None,
                           key: PrivateKey | None = None) -> bool:
        """revokeCert. Signed by the account (``kid``) or, with ``key``, by the certificate's
        own key (``jwk``), which works even without the account that ordered it. Returns True
        when this request revoked it, False when it was already revoked (``alreadyRevoked``,
        e.g. the answer to an earlier attempt was lost): both mean "revoked"."""
        payload: dict[str, Any] = {"certificate": jws.b64url(cert_der)}
        if reason is not None:
            payload["reason"] = REVOCATION_REASONS[reason] if isinstance(reason, str) else int(reason)
        url = self.directory.revoke_cert
        try:
            if key is None:
                self._post(url, payload)
            else:
                self.transport.post(url, payload, key=key, kid=None)
        except AlreadyRevoked:
            # A retried revocation (the first answer was lost) or one done elsewhere: the
            # certificate is revoked, which is what was asked.
            log.info("certificate already revoked at %s", url)
            return False
        return True

    # ------------------------------------------------------------------ RFC 9773 ARI

    def renewal_info(self, cert: str | bytes | x509.Certificate) -> RenewalInfo | None:
        """The CA's suggested renewal window for ``cert``; None when the CA has no ARI."""
        base = self.directory.renewal_info
        if not base:
            return None
        url = f"{base.rstrip('/')}/{ari_cert_id(cert)}"
        response = self.transport.get(url)
        data = response.json()
        window = data.get("suggestedWindow")
        if not isinstance(window, Mapping):
            raise AcmeProtocolError("renewalInfo has no suggestedWindow", url=url, status=response.status)
        start, end = _time(window.get("start")), _time(window.get("end"))
        if start is None or end is None or end < start:
            raise AcmeProtocolError(f"renewalInfo has an unusable window {dict(window)!r}", url=url,
                                    status=response.status)
        explanation = data.get("explanationURL")
        return RenewalInfo(start=start, end=end, retry_after=response.retry_after,
                           explanation_url=explanation if isinstance(explanation, str) else None)

    # ------------------------------------------------------------------ plumbing

    def _kid(self) -> str:
        if not self.account_url:
            raise AcmeError("no ACME account URL known: register or find the account first")
        return self.account_url

    def _post(self, url: str, payload: Any, *, use_kid: bool = True, accept: str | None = None,
              retry: bool = True) -> Response:
        _ = self.directory  # the transport needs newNonce
        kid = self._kid() if use_kid else None
        return self.transport.post(url, payload, key=self.account_key, kid=kid, accept=accept, retry=retry)

    def _fetch(self, url: str, parse: Callable[[str, Response], Any]) -> tuple[Any, Response]:
        response = self._post(url, None)
        return parse(url, response), response

    def _poll(self, fetch: Callable[[], tuple[Any, Response]], done: Callable[[Any], bool],
              deadline: float, what: str) -> Any:
        """Fetch until ``done``; between fetches wait the server's Retry-After, else the next
        POLL_INTERVALS step, but never past ``deadline`` (one last fetch happens there)."""
        for attempt in range(1_000_000):
            resource, response = fetch()
            if done(resource):
                return resource
            now = self.clock()
            if now >= deadline:
                raise AcmeTimeout(f"{what} is still {resource.status} at the deadline")
            step = self.poll_intervals[min(attempt, len(self.poll_intervals) - 1)]
            # Retry-After may lengthen our wait, never shorten it below the schedule: a
            # "Retry-After: 0" (or a date in the past) must not turn the poll into a busy loop.
            delay = max(step, MIN_POLL_WAIT, response.retry_after or 0.0)
            self.sleep(max(0.0, min(delay, deadline - now)))
        raise AssertionError("unreachable")  # pragma: no cover


def _maybe_processed(exc: AcmeError) -> bool:
    """The request may have been acted on although we got no answer: a timeout or a dropped
    connection after sending, or a 5xx (the CA may fail after committing)."""
    if isinstance(exc, AcmeUnreachable):
        return not exc.unsent
    return (exc.status or 0) >= 500


# ----------------------------------------------------------------------------- parsing


def _account(url: str, response: Response, *, created: bool = False) -> Account:
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


def _order(url: str, response: Response) -> Order:
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
            expires=_time(data.get("expires")),
            error=problem_from_json(data["error"]) if isinstance(data.get("error"), Mapping) else None,
            replaces=data.get("replaces"),
            profile=data.get("profile"),
        )
    except (KeyError, TypeError) as exc:
        raise AcmeProtocolError(f"malformed order object (missing or bad {exc})", url=url,
                                status=response.status) from None


def _authorization(url: str, response: Response) -> Authorization:
    data = response.json()
    try:
        ident = data["identifier"]
        return Authorization(
            url=url,
            status=_str(data, "status"),
            identifier=Identifier(_str(ident, "type"), _str(ident, "value")),
            challenges=tuple(_challenge(c, url) for c in _list(data, "challenges", default=[])),
            wildcard=data.get("wildcard") is True,
            expires=_time(data.get("expires")),
        )
    except (KeyError, TypeError) as exc:
        raise AcmeProtocolError(f"malformed authorization object (missing or bad {exc})", url=url,
                                status=response.status) from None


def _challenge(data: Mapping[str, Any], where: str) -> Challenge:
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


def _time(value: Any) -> dt.datetime | None:
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

