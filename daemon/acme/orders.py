"""The issuance verbs of RFC 8555 §7.4–§7.5: orders, authorizations, challenges, finalize, download.

Each method is one request or one poll loop (``polling.py``); ``issue.py`` strings them into an
issuance. ``finalize`` is the one state-changing request here that must never be repeated
blindly, so its read-back rule lives next to it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from daemon.acme import jws
from daemon.acme.polling import poll
from daemon.acme.problems import AcmeError, AcmeProtocolError, AcmeUnreachable, OrderNotReady
from daemon.acme.resources import (
    Authorization,
    CertificateChain,
    Challenge,
    Identifier,
    Order,
    parse_authorization,
    parse_challenge,
    parse_order,
)
from daemon.acme.session import AcmeSession
from daemon.acme.transport import PEM_CHAIN
from daemon.keys import split_pem_chain

log = logging.getLogger("daemon.acme.client")  # the logger these messages always had


class Orders(AcmeSession):
    """§7.4–§7.5 verbs; mixed into ``AcmeClient``."""

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
        return parse_order(response.require_location(), response)

    def get_order(self, url: str) -> Order:
        return parse_order(url, self._post(url, None))

    def get_authorization(self, url: str) -> Authorization:
        return parse_authorization(url, self._post(url, None))

    def answer_challenge(self, challenge: Challenge) -> Challenge:
        """Tell the CA the challenge is ready to be validated (§7.5.1)."""
        return parse_challenge(self._post(challenge.url, {}).json(), challenge.url)

    def poll_authorization(self, url: str, deadline: float) -> Authorization:
        """Fetch the authorization until it is no longer pending (valid, invalid, ...)."""
        return poll(lambda: self._fetch(url, parse_authorization), lambda a: a.status != "pending",
                    deadline, f"authorization {url}", clock=self.clock, sleep=self.sleep,
                    intervals=self.poll_intervals)

    def poll_order(self, order: Order | str, deadline: float) -> Order:
        """Fetch the order until it is neither pending nor processing (ready, valid, invalid)."""
        url = order if isinstance(order, str) else order.url
        return poll(lambda: self._fetch(url, parse_order), lambda o: o.status not in ("pending", "processing"),
                    deadline, f"order {url}", clock=self.clock, sleep=self.sleep, intervals=self.poll_intervals)

    def finalize(self, order: Order, csr_der: bytes) -> Order:
        """Send the CSR (§7.4). The order is then ``processing`` or already ``valid``.

        Never sent twice blindly: when the answer is lost (a timeout, a dropped connection, a
        5xx) or the CA says ``orderNotReady``, the order is read back (POST-as-GET). Processing
        or valid means the CA took the CSR; still ``ready`` means it did not, and only then is
        the CSR sent once more."""
        payload = {"csr": jws.b64url(csr_der)}
        for attempt in range(2):
            try:
                return parse_order(order.url, self._post(order.finalize, payload, retry=False))
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
        return parse_authorization(url, self._post(url, {"status": "deactivated"}))


def _maybe_processed(exc: AcmeError) -> bool:
    """The request may have been acted on although we got no answer: a timeout or a dropped
    connection after sending, or a 5xx (the CA may fail after committing)."""
    if isinstance(exc, AcmeUnreachable):
        return not exc.unsent
    return (exc.status or 0) >= 500
