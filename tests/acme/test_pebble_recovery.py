"""Renewal that cannot get stuck (#12 items 1 and 2), against a real Pebble 2.10.

A lost finalize answer is read back instead of being sent again; an order that a crash left
after finalize is picked up; ``alreadyReplaced`` (or any refusal of ``replaces``) leads to a
plain re-order. Losing an answer is done at the HTTP session (a ``requests.Session`` that sends
the request, lets Pebble act on it, then raises a read timeout): our code runs unchanged.
"""

from __future__ import annotations

import pytest
import requests

from daemon import keys
from daemon.acme import AcmeClient, issue_certificate
from daemon.acme import problems as p
from daemon.acme.transport import Transport
from daemon.issuer import Issuer, read_pending_order
from daemon.state import StateStore
from tests.renewal.helpers import config
from tests.support.pebble import issue_replaceable

pytestmark = pytest.mark.pebble
DEADLINE = 60.0


class LosingSession(requests.Session):
    """Performs every request; for the first ``lose`` POSTs whose URL contains ``marker`` the
    answer is thrown away and a read timeout raised, as when a connection drops after sending.

    ``sent`` counts the POSTs the CA acted on: one Pebble refused with ``badNonce`` (its own 5 %
    rejection) did nothing, is repeated by the transport as it should be, and is neither counted
    nor lost, else the test would fail one run in twenty for a correct client."""

    def __init__(self, marker: str, lose: int = 1):
        super().__init__()
        self.marker, self.lose, self.sent = marker, lose, 0

    def request(self, method, url, *args, **kw):
        response = super().request(method, url, *args, **kw)
        if method == "POST" and self.marker in url and not _bad_nonce(response):
            self.sent += 1
            if self.lose > 0:
                self.lose -= 1
                raise requests.exceptions.ReadTimeout("Read timed out. (read timeout=30)")
        return response


def _bad_nonce(response: requests.Response) -> bool:
    return response.status_code == 400 and "urn:ietf:params:acme:error:badNonce" in response.text


def test_a_lost_finalize_answer_is_read_back_not_sent_again(pebble, solver, zone):
    session = LosingSession("/finalize-order/")
    transport = Transport(session=session, ca_bundle=pebble.ca_bundle)
    with AcmeClient(pebble.directory_url, keys.generate_private_key("ec256"), transport=transport) as client:
        client.new_account(["mailto:test@example.com"], tos_agreed=True)
        key = keys.generate_private_key("ec256")

        issued = issue_certificate(client, [zone], key, solver, deadline_seconds=DEADLINE, profile="default")

    assert session.sent == 1, "the finalize was sent again after its answer was lost"
    assert keys.key_matches_certificate(key, issued.fullchain_pem)
    assert pebble.cert_status(issued.cert_info.serial)["Status"] == "Valid"


def test_already_replaced_leads_to_a_plain_reorder(client, solver, zone):
    _, first = issue_replaceable(client, [zone], solver, deadline=DEADLINE, profile="default")
    replaces = keys.ari_cert_id(first.fullchain_pem)
    # The renewal a crash lost after finalize: the CA has marked ``first`` as replaced.
    issue_certificate(client, [zone], keys.generate_private_key("ec256"), solver, deadline_seconds=DEADLINE,
                      profile="default", replaces=replaces)
    with pytest.raises(p.AlreadyReplaced):
        client.new_order([zone], replaces=replaces, profile="default")

    again = issue_certificate(client, [zone], keys.generate_private_key("ec256"), solver,
                              deadline_seconds=DEADLINE, profile="default", replaces=replaces)

    assert again.cert_info.serial not in (first.cert_info.serial,)


def test_a_replaces_pebble_answers_with_a_500_is_dropped_once_nothing_was_created(client, solver, zone):
    """Pebble answers a ``replaces`` naming a serial it never issued with a 500 (and, now and
    then, one it did issue: it files the serial only after the order already shows valid).
    newOrder is not repeated blindly, but once the orders list shows that neither try created
    an order, that 500 is a refusal and the renewal orders without ``replaces``."""
    first = issue_certificate(client, [zone], keys.generate_private_key("ec256"), solver,
                              deadline_seconds=DEADLINE, profile="default")
    issuer_key_id = keys.ari_cert_id(first.fullchain_pem).split(".")[0]
    unknown = issuer_key_id + ".AQIDBAUGBwg"  # Pebble's issuer, a serial it never issued
    with pytest.raises(p.ServerInternal) as info:
        client.new_order([zone], replaces=unknown, profile="default")
    assert info.value.nothing_created

    again = issue_certificate(client, [zone], keys.generate_private_key("ec256"), solver,
                              deadline_seconds=DEADLINE, profile="default", replaces=unknown)

    assert again.cert_info.serial != first.cert_info.serial


def test_a_finalized_order_is_picked_up_with_the_same_key(client, solver, zone):
    key = keys.generate_private_key("ec256")
    seen: list[str] = []
    first = issue_certificate(client, [zone], key, solver, deadline_seconds=DEADLINE, profile="default",
                              on_order=seen.append)
    assert seen == [first.order_url]
    orders_before = client.round_trips

    resumed = issue_certificate(client, [zone], key, solver, deadline_seconds=DEADLINE, profile="default",
                                resume_order=first.order_url, on_order=seen.append)

    assert resumed.cert_info.serial == first.cert_info.serial, "a new certificate was ordered"
    assert seen == [first.order_url] and client.round_trips - orders_before <= 4


class Crash(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler of ours turns it into a failure."""


def renew_crashing_after_finalize(cfg, store, cert, solver, previous, monkeypatch) -> None:
    """A renewal of ``previous`` that dies the moment Pebble has answered its finalize, before
    anything reads the answer (so the CA has marked ``previous`` as replaced)."""
    original = requests.Session.request

    def crash_after_finalize(self, method, url, *args, **kw):
        response = original(self, method, url, *args, **kw)
        if method == "POST" and "/finalize-order/" in url:
            raise Crash()
        return response

    monkeypatch.setattr(requests.Session, "request", crash_after_finalize)
    with pytest.raises(Crash):
        Issuer(cfg, store).issue(cert, solver, previous.fullchain_pem, previous.meta)
    monkeypatch.setattr(requests.Session, "request", original)


def test_a_crash_between_finalize_and_store_then_a_rerun_completes(pebble, challtestsrv, solver, zone,
                                                                    tmp_path, monkeypatch):
    cfg = config(tmp_path, acme={"directory": pebble.directory_url, "ca_bundle": pebble.ca_bundle,
                                 "profile": "default"}, cert={"domains": [zone]})
    store = StateStore(cfg.state_dir)
    store.ensure()
    cert = cfg.certificates[0]
    first = Issuer(cfg, store).issue(cert, solver, None)
    previous = store.read_certificate("www")
    renew_crashing_after_finalize(cfg, store, cert, solver, previous, monkeypatch)
    assert read_pending_order(store, "www") is not None, "the order URL was not recorded before finalize"
    assert store.read_certificate("www").meta["serial"] == first.serial  # nothing stored yet

    renewed = Issuer(cfg, store).issue(cert, solver, previous.fullchain_pem, previous.meta)

    assert renewed.serial != first.serial
    assert store.read_certificate("www").meta["serial"] == renewed.serial
    assert read_pending_order(store, "www") is None


def test_a_crash_with_the_order_record_lost_still_renews(pebble, solver, zone, tmp_path, monkeypatch):
    """Without the pending order (an older state dir, a lost file) the CA's alreadyReplaced
    must not block the renewal: the next attempt orders without ``replaces``."""
    cfg = config(tmp_path, acme={"directory": pebble.directory_url, "ca_bundle": pebble.ca_bundle,
                                 "profile": "default"}, cert={"domains": [zone]})
    store = StateStore(cfg.state_dir)
    store.ensure()
    cert = cfg.certificates[0]
    first = Issuer(cfg, store).issue(cert, solver, None)
    previous = store.read_certificate("www")
    renew_crashing_after_finalize(cfg, store, cert, solver, previous, monkeypatch)
    (cfg.state_dir / "pending" / "www.order.json").unlink()

    renewed = Issuer(cfg, store).issue(cert, solver, previous.fullchain_pem, previous.meta)

    assert renewed.serial != first.serial


def test_no_replaces_after_a_change_of_ca(pebble, solver, zone, tmp_path):
    cfg = config(tmp_path, acme={"directory": pebble.directory_url, "ca_bundle": pebble.ca_bundle,
                                 "profile": "default"}, cert={"domains": [zone]})
    store = StateStore(cfg.state_dir)
    store.ensure()
    issuer = Issuer(cfg, store)
    issuer.issue(cfg.certificates[0], solver, None)
    previous = store.read_certificate("www")
    client = issuer._client(with_account=True)  # noqa: SLF001 - what would be sent

    assert issuer._replaces(client, previous.fullchain_pem, previous.meta)  # noqa: SLF001 - same CA: sent
    moved = {**previous.meta, "directory": "https://another-ca.test/dir"}
    assert issuer._replaces(client, previous.fullchain_pem, moved) is None  # noqa: SLF001
    other_account = {**previous.meta, "account_url": "https://127.0.0.1/my-account/999"}
    assert issuer._replaces(client, previous.fullchain_pem, other_account) is None  # noqa: SLF001
