"""Issuing one certificate with DNS-01: RFC 8555 §7.4 read top to bottom.

The solver is anything with the three DNS-provider calls (``providers.base.DnsProvider``
satisfies it): every challenge is presented at once, then one ``wait``, then ``cleanup`` in a
``finally`` even when the order fails or the caller is interrupted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from daemon.acme import jws
from daemon.acme.client import AcmeClient, Authorization, CertificateChain, Challenge
from daemon.acme.problems import AcmeError, AcmeProtocolError
from daemon.keys import CertInfo, PrivateKey, build_csr, certificate_info, key_matches_certificate
from providers.base import DnsChallenge

DEFAULT_DEADLINE = 900.0  # seconds for one issuance, DNS propagation included


class ChallengeSolver(Protocol):
    """The part of ``providers.base.DnsProvider`` issuance needs."""

    def present(self, challenges: Sequence[DnsChallenge]) -> object: ...

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
                      log: logging.Logger | None = None) -> IssuedCertificate:
    """Order a certificate for ``domains`` (wildcards allowed) and return the chain.

    ``replaces``: the ARI id of the certificate being renewed. ``preferred_chain``: the issuer
    CN of the root the chain should lead to, when the CA offers alternates. On failure the
    authorizations still pending are deactivated (best effort) and the typed AcmeError is
    raised, carrying the CA's problem (identifier, subproblems) and ``order_url``.
    """
    log = log or logging.getLogger(__name__)
    deadline = client.clock() + deadline_seconds
    order = client.new_order(domains, replaces=replaces, profile=profile)
    log.info("order %s for %s", order.url, ", ".join(domains))
    pending: dict[str, Authorization] = {}  # authorization URL -> authz we still owe an answer
    try:
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
        if order.status != "valid" or not order.certificate:
            raise _order_failed(order.error, order.url, order.status)

        chain = _choose_chain(client, client.download_certificate(order.certificate), preferred_chain, log)
    except Exception as exc:  # not on KeyboardInterrupt/SystemExit: then only cleanup (above) runs
        if isinstance(exc, AcmeError) and exc.order_url is None:
            exc.order_url = order.url
        _abandon(client, pending.values(), log)
        raise

    if not key_matches_certificate(cert_key, chain.pem):
        raise AcmeProtocolError("the issued certificate does not certify our key", url=chain.url)
    info = certificate_info(chain.pem)
    log.info("issued %s serial %s, valid until %s", order.url, info.serial, info.not_after.isoformat())
    return IssuedCertificate(fullchain_pem=chain.pem, cert_info=info, order_url=order.url)


def _dns_record(authz: Authorization, challenge: Challenge, account_key: PrivateKey) -> DnsChallenge:
    """§8.4: TXT at ``_acme-challenge.<name>`` (the wildcard's base name for ``*.name``) holding
    base64url(SHA-256(keyAuthorization))."""
    key_authorization = jws.key_authorization(challenge.token or "", account_key)
    return DnsChallenge(domain=authz.domain, record_name=f"_acme-challenge.{authz.identifier.value}",
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
