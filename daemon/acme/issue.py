"""Issuing one certificate with DNS-01: RFC 8555 §7.4 read top to bottom.

The solver is anything with the three DNS-provider calls (``providers.base.DnsProvider``
satisfies it): every challenge is presented at once, then one ``wait``, then ``cleanup`` in a
``finally`` even when the order fails or the caller is interrupted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from daemon.acme import jws
from daemon.acme.client import AcmeClient, Authorization, CertificateChain, Challenge, Order
from daemon.acme.problems import AcmeError, AcmeProtocolError
from daemon.keys import CertInfo, PrivateKey, build_csr, certificate_info, key_matches_certificate

DEFAULT_DEADLINE = 900.0  # seconds for one issuance, DNS propagation included


@dataclass(frozen=True)
class Dns01Record:
    """One TXT record a dns-01 challenge needs (RFC 8555 §8.4). The caller (daemon.issuer)
    turns these into its DNS plugin's values: the ACME package knows nothing of providers."""

    domain: str  # the identifier as ordered (``*.example.com`` for a wildcard)
    record_name: str  # ``_acme-challenge.example.com``
    value: str  # base64url(SHA-256(key authorization))


class ChallengeSolver(Protocol):
    """What issuance needs from a DNS-01 solver (daemon.issuer adapts a DNS provider)."""

    def present(self, challenges: Sequence[Dns01Record]) -> object: ...

    def wait(self, handle: object, deadline: float) -> None: ...

    def cleanup(self, handle: object) -> None: ...


@dataclass(frozen=True)
class IssuedCertificate:
    fullchain_pem: str  # leaf first, then the intermediates of the chosen chain
    cert_info: CertInfo
    order_url: str


def issue_certificate(client: AcmeClient, domains: Sequence[str], cert_key: PrivateKey,
                      solver: ChallengeSolver, *, profile: str | None = None, replaces: str | None = None,
                      preferred_chain: str | None = None, deadline_seconds: float = DEFAULT_DEADLINE,
                      log: logging.Logger | logging.LoggerAdapter | None = None,
                      resume_order: str | None = None,
                      on_order: Callable[[str], None] | None = None) -> IssuedCertificate:
    """Order a certificate for ``domains`` (wildcards allowed) and return the chain.

    ``replaces``: the ARI id of the certificate being renewed; when the CA rejects the order
    because of it (``alreadyReplaced`` after a crash past finalize, or any other refusal of an
    order that carried it; a retryable failure is one only when the CA's orders list showed
    that it created nothing, ``AcmeError.nothing_created``), the order is placed once more
    without it: ``replaces`` is a hint for the CA's rate limits, never worth a certificate that
    cannot be renewed. A retryable failure of newOrder (its answer lost and the CA's orders list
    unable to say whether the order exists) ends this attempt before any challenge record is
    made; the caller's failure backoff tries again.
    ``resume_order``: the URL of an order a crashed attempt left (see ``on_order``); it is read
    back and continued (valid: download; processing: wait; ready: finalize; pending: answer)
    when it is for the same names and usable, else a new order is placed. ``on_order`` is
    called with the URL of a new order before anything is finalized, so that the caller can
    remember it. ``preferred_chain``: the issuer CN of the root the chain should lead to, when
    the CA offers alternates. On failure the authorizations still pending are deactivated
    (best effort) and the typed AcmeError is raised, carrying the CA's problem (identifier,
    subproblems) and ``order_url``.
    """
    log = log or logging.getLogger(__name__)
    deadline = client.clock() + deadline_seconds
    order = _resume(client, resume_order, domains, log) if resume_order else None
    if order is None:
        order = _new_order(client, domains, replaces, profile, log)
        log.info("order %s for %s", order.url, ", ".join(domains))
        if on_order is not None:
            on_order(order.url)
    pending: dict[str, Authorization] = {}  # authorization URL -> authz we still owe an answer
    try:
        if order.status in ("processing", "valid"):
            # Finalized by an attempt that did not live to store the result: pick it up.
            if order.status == "processing":
                order = client.poll_order(order, deadline)
            chain = _download(client, order, preferred_chain, log)
            if key_matches_certificate(cert_key, chain.pem):
                return _issued(chain, order, log)
            log.warning("order %s was finalized with another key; ordering again", order.url)
            order = _new_order(client, domains, None, profile, log)
            if on_order is not None:
                on_order(order.url)
        # §7.5: an authorization may already be valid (reused); only the pending ones need us.
        for authz in (client.get_authorization(url) for url in order.authorizations):
            if authz.status == "pending":
                pending[authz.url] = authz
            elif authz.status != "valid":
                raise authz.problem() or AcmeError(f"authorization is {authz.status}", url=authz.url,
                                                   identifier=authz.domain)

        if pending:
            challenges = {url: _dns01(authz) for url, authz in pending.items()}
            records = [_dns_record(authz, challenges[url], client.account_key) for url, authz in pending.items()]
            handle = solver.present(records)
            try:
                solver.wait(handle, deadline)
                log.info("answering %d dns-01 challenge(s)", len(challenges))
                for chall in challenges.values():
                    client.answer_challenge(chall)
                for url in list(pending):
                    authz = client.poll_authorization(url, deadline)
                    del pending[url]
                    if authz.status != "valid":
                        raise authz.problem() or AcmeError(f"authorization became {authz.status}",
                                                           url=url, identifier=authz.domain)
            finally:
                _cleanup(solver, handle, log)

        order = client.poll_order(order, deadline)
        if order.status != "ready":
            raise _order_failed(order.error, order.url, order.status)

        csr = build_csr(cert_key, list(domains))
        order = client.finalize(order, csr)
        if order.status == "processing":
            order = client.poll_order(order, deadline)
        chain = _download(client, order, preferred_chain, log)
    except Exception as exc:  # not on KeyboardInterrupt/SystemExit: then only cleanup (above) runs
        if isinstance(exc, AcmeError) and exc.order_url is None:
            exc.order_url = order.url
        _abandon(client, pending.values(), log)
        raise

    if not key_matches_certificate(cert_key, chain.pem):
        raise AcmeProtocolError("the issued certificate does not certify our key", url=chain.url)
    return _issued(chain, order, log)


def _issued(chain: CertificateChain, order: Order, log) -> IssuedCertificate:
    info = certificate_info(chain.pem)
    log.info("issued %s serial %s, valid until %s", order.url, info.serial, info.not_after.isoformat())
    return IssuedCertificate(fullchain_pem=chain.pem, cert_info=info, order_url=order.url)


def _download(client: AcmeClient, order: Order, preferred_chain: str | None, log) -> CertificateChain:
    if order.status != "valid" or not order.certificate:
        raise _order_failed(order.error, order.url, order.status)
    return _choose_chain(client, client.download_certificate(order.certificate), preferred_chain, log)


def _new_order(client: AcmeClient, domains: Sequence[str], replaces: str | None, profile: str | None,
               log) -> Order:
    try:
        return client.new_order(domains, replaces=replaces, profile=profile)
    except AcmeError as exc:
        if not replaces or (exc.retryable and not exc.nothing_created):
            # A transient failure is no refusal of ``replaces``, and after a lost answer that
            # new_order could not read back, ordering again would be the blind repeat it avoids.
            # A 5xx twice with no order created is a refusal (Pebble's to a ``replaces`` it
            # cannot match).
            raise
        # alreadyReplaced (an earlier order for it was finalized: a crash or a lost download),
        # or a CA that does not know the certificate: the renewal must not depend on it.
        log.warning("the CA refused an order replacing %s (%s); ordering without 'replaces'", replaces, exc)
        return client.new_order(domains, replaces=None, profile=profile)


def _resume(client: AcmeClient, url: str, domains: Sequence[str], log) -> Order | None:
    """The order a crashed attempt left, when it can still give us the certificate."""
    try:
        order = client.get_order(url)
    except AcmeError as exc:
        log.info("the order %s left by an interrupted attempt cannot be read (%s); ordering again", url, exc)
        return None
    if {i.value.lower() for i in order.identifiers} != {d.lower() for d in domains}:
        return None
    if order.status not in ("pending", "ready", "processing", "valid"):
        return None
    log.info("picking up order %s (%s) left by an interrupted attempt", url, order.status)
    return order


def _dns_record(authz: Authorization, challenge: Challenge, account_key: PrivateKey) -> Dns01Record:
    """§8.4: TXT at ``_acme-challenge.<name>`` (the wildcard's base name for ``*.name``) holding
    base64url(SHA-256(keyAuthorization))."""
    key_authorization = jws.key_authorization(challenge.token or "", account_key)
    return Dns01Record(domain=authz.domain, record_name=f"_acme-challenge.{authz.identifier.value}",
                       value=jws.dns01_txt_value(key_authorization))


def _cleanup(solver: ChallengeSolver, handle: object, log: logging.Logger) -> None:
    """Remove the challenge records without letting a cleanup failure replace the error that
    brought us here (or fail an issuance that succeeded): the DNS journal keeps what could not
    be removed, and the daemon retries it."""
    try:
        solver.cleanup(handle)
    except Exception as exc:  # noqa: BLE001 - logged; the journal has the record
        log.error("challenge record cleanup failed (will be retried): %s", exc)


def _dns01(authz: Authorization) -> Challenge:
    chall = authz.challenge("dns-01")
    if chall is None or not chall.token:
        offered = ", ".join(c.type for c in authz.challenges) or "none"
        raise AcmeError(f"the CA offers no dns-01 challenge (offered: {offered})", url=authz.url,
                        identifier=authz.domain)
    return chall


def _order_failed(error: AcmeError | None, url: str, status: str) -> AcmeError:
    return error or AcmeError(f"order is {status}", url=url)


def _choose_chain(client: AcmeClient, chain: CertificateChain, preferred: str | None,
                  log: logging.Logger) -> CertificateChain:
    """The default chain, unless an alternate leads to the root named ``preferred`` (matched
    against the issuer CN of the chain's topmost certificate, as certbot does)."""
    if not preferred or chain.top_issuer_cn == preferred:
        return chain
    for url in chain.alternates:
        alternate = client.download_certificate(url)
        if alternate.top_issuer_cn == preferred:
            return alternate
    log.warning("no chain leads to %r; using the default chain (to %r)", preferred, chain.top_issuer_cn)
    return chain


def _abandon(client: AcmeClient, authzs, log: logging.Logger) -> None:
    """Deactivate the authorizations of an abandoned order that are still pending, so that
    nothing waits at the CA for an answer that will never come (§7.5.2). Best effort."""
    for authz in list(authzs):
        try:
            client.deactivate_authorization(authz.url)
        except Exception as exc:  # noqa: BLE001 - best effort; the original error matters more
            log.debug("could not deactivate %s: %s", authz.url, exc)
