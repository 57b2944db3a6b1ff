"""The issuance verbs of RFC 8555 §7.4–§7.5: orders, authorizations, challenges, finalize, download.

Each method is one request or one poll loop (``polling.py``); ``issue.py`` strings them into an
issuance. ``new_order`` and ``finalize`` are the state-changing requests here that must never be
repeated blindly, so their read-back rules live next to them.
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
    parse_account,
    parse_authorization,
    parse_challenge,
    parse_order,
)
from daemon.acme.session import AcmeSession
from daemon.acme.transport import PEM_CHAIN
from daemon.keys import split_pem_chain

log = logging.getLogger("daemon.acme.client")  # the logger these messages always had

# Reading back a newOrder whose answer was lost: pages of the account's orders list followed, and
# orders read from its end. Orders newer than the lost one can only come from this process's
# other issuances running at the same time (runtime.concurrency, 4 by default).
MAX_ORDER_LIST_PAGES = 20
MAX_ORDERS_READ = 10
# What a newOrder creates (§7.1.6: pending, or ready when every authorization is already valid).
# A processing or valid order was finalized, so it is an older one (most likely the order of
# the certificate being renewed): adopting it would download that certificate, not a new one.
NEW_ORDER_STATUSES = ("pending", "ready")


class Orders(AcmeSession):
    """§7.4–§7.5 verbs; mixed into ``AcmeClient``."""

    def new_order(self, identifiers: Iterable[str | Identifier], replaces: str | None = None,
                  profile: str | None = None) -> Order:
        """newOrder (§7.4). ``replaces`` is the ARI id of the certificate this order renews
        (RFC 9773 §5); ``profile`` one of the directory's ``meta.profiles``.

        Never sent twice blindly: a repeat may leave a second pending order at the CA and
        counts twice against its new-orders rate limit. Only a connection that was never made
        is retried. When the answer is lost (a timeout, a dropped connection, a 5xx) the CA may
        have created the order, so the account's orders list is read for it (``_lost_order``):
        found, it is the answer; not there, the CA did not create one, and only then is the
        request sent once more (again without blind retries, and read back the same way). When
        that fails too and the list again shows nothing, the error says so (``nothing_created``):
        the CA refuses this request, so ``issue.py`` may order without ``replaces`` (Pebble
        answers a ``replaces`` it cannot match with a 500)."""
        self.directory.check_profile(profile)
        idents = [i if isinstance(i, Identifier) else Identifier.dns(i) for i in identifiers]
        payload: dict[str, Any] = {"identifiers": [i.to_json() for i in idents]}
        if replaces:
            payload["replaces"] = replaces
        if profile:
            payload["profile"] = profile
        for attempt in range(2):
            try:
                response = self._post(self.directory.new_order, payload, retry=False)
                return parse_order(response.require_location(), response)
            except AcmeError as exc:
                if not (exc.retryable and _maybe_processed(exc)):
                    raise
                log.info("newOrder: %s; looking for the order in the account's orders list", exc)
                order = self._lost_order(idents, replaces, profile, exc)
                if order is not None:
                    log.info("recovered the lost newOrder answer: %s (%s) is in the account's orders list",
                             order.url, order.status)
                    return order
                if attempt == 1:
                    exc.nothing_created = True
                    raise
                log.info("newOrder: the account's orders list has no such order; sending newOrder once more")
        raise AssertionError("unreachable")  # pragma: no cover

    def _lost_order(self, idents: list[Identifier], replaces: str | None, profile: str | None,
                    lost: AcmeError) -> Order | None:
        """The order a newOrder whose answer was ``lost`` created, or None when the account's
        orders list (§7.1.2.1) shows it was not created.

        A match has the requested identifiers (as a set: type, and the value without regard to
        case), a status a new order has (``NEW_ORDER_STATUSES``), and the ``replaces`` asked for
        and, when a profile was asked for, that profile, wherever the CA reports them (a CA
        picks a profile itself when none is asked; Pebble does at random). RFC 8555 leaves the
        list's order open; Pebble lists the oldest first, so the last ``MAX_ORDERS_READ`` are
        read, newest first.

        Raises ``lost`` (retryable) when the list cannot tell: the account has no ``orders``
        URL (Let's Encrypt omits it), the list runs past ``MAX_ORDER_LIST_PAGES`` pages, or
        reading it fails. Sending newOrder again then would be the blind repeat; the caller's
        backoff (the next attempt) takes it instead. That is safe: nothing was started for an
        order we never saw, a pending order left at the CA only expires (RFC 8555 asks nothing
        of it), and Let's Encrypt hands the same pending order back to the next newOrder for
        the same names."""
        wanted = _identifier_set(idents)
        try:
            orders_url = self._orders_url()
            newest = self._order_list(orders_url)[-MAX_ORDERS_READ:] if orders_url else []
            for url in reversed(newest):
                order = self.get_order(url)
                if (_identifier_set(order.identifiers) == wanted and order.status in NEW_ORDER_STATUSES
                        and (order.replaces is None or order.replaces == replaces)
                        and (not profile or not order.profile or order.profile == profile)):
                    return order
        except AcmeError as exc:
            log.info("newOrder: reading the account's orders back failed (%s); leaving it to the next attempt", exc)
            raise lost from None
        if orders_url is None:
            log.info("newOrder: the account has no orders list to read back; leaving it to the next attempt")
            raise lost
        return None

    def _orders_url(self) -> str | None:
        url = self._kid()
        return parse_account(url, self._post(url, None)).orders_url

    def _order_list(self, url: str) -> list[str]:
        """Every order URL of the account's orders list, following ``Link: rel="next"``; raises
        AcmeProtocolError when it has more than ``MAX_ORDER_LIST_PAGES`` pages (its end, where
        Pebble lists the newest orders, would be out of reach)."""
        urls: list[str] = []
        seen: set[str] = set()
        next_url: str | None = url
        while next_url is not None:
            if next_url in seen or len(seen) >= MAX_ORDER_LIST_PAGES:
                raise AcmeProtocolError(f"the orders list has more than {MAX_ORDER_LIST_PAGES} pages "
                                        "(or loops)", url=url)
            seen.add(next_url)
            response = self._post(next_url, None)
            orders = response.json().get("orders")
            if not isinstance(orders, list) or not all(isinstance(o, str) for o in orders):
                raise AcmeProtocolError("malformed orders list (missing or bad 'orders')", url=next_url,
                                        status=response.status)
            urls.extend(orders)
            links = response.links("next")
            next_url = links[0] if links else None
        return urls

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


def _identifier_set(idents: Iterable[Identifier]) -> set[tuple[str, str]]:
    return {(i.type, i.value.lower()) for i in idents}


def _maybe_processed(exc: AcmeError) -> bool:
    """The request may have been acted on although we got no answer: a timeout or a dropped
    connection after sending, or a 5xx (the CA may fail after committing)."""
    if isinstance(exc, AcmeUnreachable):
        return not exc.unsent
    return (exc.status or 0) >= 500
