"""#12 items 2 and 7 against a scripted session: a state-changing POST whose answer may have
been lost is never repeated blindly, and a poll never spins on ``Retry-After: 0``."""

from __future__ import annotations

import pytest
import requests

from daemon import keys
from daemon.acme.client import MIN_POLL_WAIT, AcmeClient, Order
from daemon.acme.transport import Transport
from tests.acme.fakes import DIRECTORY, FakeClock, FakeSession, problem, response

KEY = keys.generate_private_key("ec256")


def order_json(status: str, **extra):
    return {"status": status, "identifiers": [{"type": "dns", "value": "example.com"}],
            "authorizations": ["https://ca.test/authz/1"], "finalize": "https://ca.test/fin/1", **extra}


ORDER = Order(url="https://ca.test/order/1", status="ready", identifiers=(), authorizations=(),
              finalize="https://ca.test/fin/1")


def make_client(session: FakeSession) -> tuple[AcmeClient, FakeClock]:
    clock = FakeClock()
    transport = Transport(session=session, clock=clock, sleep=clock.sleep, backoff=(0.1, 0.2))
    return AcmeClient("https://ca.test/dir", KEY, account_url="https://ca.test/acct/1", transport=transport), clock


def posts_to(session: FakeSession, url: str) -> int:
    return sum(1 for c in session.calls if c["method"] == "POST" and c["url"] == url)


@pytest.mark.parametrize("lost", [requests.exceptions.ReadTimeout("Read timed out."),
                                  problem(500, "serverInternal", nonce="n1")])
def test_a_finalize_whose_answer_is_lost_is_read_back(lost):
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"), lost,
                          response(200, nonce="n2"),  # HEAD newNonce after a timeout (no nonce kept)
                          response(200, order_json("processing"), nonce="n3"))
    if isinstance(lost, requests.Response):
        session.script.remove(session.script[3])  # the 500 carried a nonce: no HEAD needed
    client, _ = make_client(session)

    order = client.finalize(ORDER, b"csr")

    assert order.status == "processing"
    assert posts_to(session, "https://ca.test/fin/1") == 1, "finalize was sent twice"
    assert posts_to(session, "https://ca.test/order/1") == 1  # the POST-as-GET of the order


def test_a_finalize_the_ca_did_not_take_is_sent_once_more():
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"),
                          problem(503, "serverInternal", nonce="n1"),
                          response(200, order_json("ready"), nonce="n2"),
                          response(200, order_json("processing"), nonce="n3"))
    client, _ = make_client(session)

    assert client.finalize(ORDER, b"csr").status == "processing"
    assert posts_to(session, "https://ca.test/fin/1") == 2


def test_order_not_ready_after_a_finalize_elsewhere_reads_the_order():
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"),
                          problem(403, "orderNotReady", nonce="n1"),
                          response(200, order_json("valid", certificate="https://ca.test/cert/1"), nonce="n2"))
    client, _ = make_client(session)

    assert client.finalize(ORDER, b"csr").status == "valid"


def test_a_refused_connection_is_retried_even_for_finalize():
    refused = requests.ConnectionError("Max retries exceeded (Caused by NewConnectionError('x: Failed to "
                                       "establish a new connection: [Errno 111] Connection refused'))")
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"), refused,
                          response(200, nonce="n1"), response(200, order_json("processing"), nonce="n2"))
    client, clock = make_client(session)

    assert client.finalize(ORDER, b"csr").status == "processing"
    assert len(clock.sleeps) == 1 and posts_to(session, "https://ca.test/fin/1") == 2


def test_a_revoke_retried_after_a_lost_answer_is_success():
    """The one state-changing request that is repeated: revoking twice cannot do harm, and the
    CA's ``alreadyRevoked`` to the repeat is the re-read that says it worked."""
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"),
                          problem(500, "serverInternal", nonce="n1"),
                          problem(400, "alreadyRevoked", nonce="n2"))
    client, _ = make_client(session)
    assert client.revoke_certificate(b"der") is False  # revoked, by the first attempt
    assert posts_to(session, DIRECTORY["revokeCert"]) == 2


@pytest.mark.parametrize("retry_after", ["0", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_polling_never_spins_on_a_zero_or_past_retry_after(retry_after):
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"),
                          *[response(200, order_json("processing"), nonce=f"n{i}",
                                     headers={"Retry-After": retry_after}) for i in range(1, 4)],
                          response(200, order_json("valid"), nonce="n9"))
    client, clock = make_client(session)

    assert client.poll_order("https://ca.test/order/1", deadline=clock() + 100).status == "valid"
    assert len(clock.sleeps) == 3 and min(clock.sleeps) >= MIN_POLL_WAIT
