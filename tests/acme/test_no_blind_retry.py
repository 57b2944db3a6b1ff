"""#12 items 2 and 7 against a scripted session: a state-changing POST whose answer may have
been lost is never repeated blindly (finalize reads the order back, newOrder the account's
orders list), and a poll never spins on ``Retry-After: 0``."""

from __future__ import annotations

import json

import pytest
import requests

from daemon import keys
from daemon.acme import issue_certificate, jws
from daemon.acme import problems as p
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


# --------------------------------------------------------------------------- newOrder

NEW_ORDER = DIRECTORY["newOrder"]
ACCOUNT = "https://ca.test/acct/1"
ORDERS = "https://ca.test/acct/1/orders"
REFUSED = "Max retries exceeded (Caused by NewConnectionError('x: Failed to establish a new connection: " \
          "[Errno 111] Connection refused'))"


def order_for(names: list[str], status: str = "pending", **extra):
    return {"status": status, "identifiers": [{"type": "dns", "value": n} for n in names],
            "authorizations": ["https://ca.test/authz/1"], "finalize": "https://ca.test/fin/9", **extra}


def created(names: list[str], url: str = "https://ca.test/order/new", nonce: str = "nc"):
    return response(201, order_for(names), headers={"Location": url}, nonce=nonce)


def account(orders: str | None = ORDERS, nonce: str = "na"):
    return response(200, {"status": "valid", **({"orders": orders} if orders else {})}, nonce=nonce)


def orders_page(urls: list[str], next_url: str | None = None, nonce: str = "np"):
    headers = {"Link": f'<{next_url}>;rel="next"'} if next_url else None
    return response(200, {"orders": urls}, headers=headers, nonce=nonce)


class RecordingSolver:
    """An issuance that ends at newOrder presents nothing, so waits for and cleans up nothing."""

    def __init__(self):
        self.presented: list = []

    def present(self, challenges):
        self.presented.append(challenges)
        return object()

    def wait(self, handle, deadline):
        raise AssertionError("nothing to wait for")

    def cleanup(self, handle):
        raise AssertionError("nothing to clean up")


@pytest.mark.parametrize("lost", [problem(500, "serverInternal", nonce="n1"),
                                  requests.exceptions.ReadTimeout("Read timed out.")])
def test_a_new_order_whose_answer_is_lost_is_found_in_the_orders_list(lost):
    """The list (two pages, oldest first as Pebble has it) holds the order the lost request
    created: it is the answer, newest first, and newOrder is not sent again."""
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"), lost)
    if not isinstance(lost, requests.Response):
        session.add(response(200, nonce="n1"))  # HEAD newNonce: the timeout brought no nonce
    session.add(account(),
                orders_page(["https://ca.test/order/1", "https://ca.test/order/2"], next_url=ORDERS + "?page=2"),
                orders_page(["https://ca.test/order/3"]),
                response(200, order_for(["www.example.com", "example.com"], profile="classic"), nonce="n3"))
    client, clock = make_client(session)

    order = client.new_order(["example.com", "www.example.com"], profile="classic")

    assert order.url == "https://ca.test/order/3" and order.status == "pending"
    assert posts_to(session, NEW_ORDER) == 1, "newOrder was repeated blindly"
    assert posts_to(session, ORDERS + "?page=2") == 1
    assert posts_to(session, "https://ca.test/order/2") == 0  # the newest one matched: no more reads
    assert clock.sleeps == []


def test_a_new_order_not_in_the_orders_list_is_sent_once_more():
    """Nothing in the list is the lost order (other names, an already finalized order for the
    same names, a profile not asked for): the CA did not create it, so sending it once more is
    not blind."""
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"),
                          problem(503, "serverInternal", nonce="n1"), account(),
                          orders_page(["https://ca.test/order/1", "https://ca.test/order/2",
                                       "https://ca.test/order/3", "https://ca.test/order/4"]),
                          # read newest first: order/4, /3, /2, /1
                          response(200, order_for(["other.example"]), nonce="n2"),
                          response(200, order_for(["example.com"], "valid"), nonce="n3"),
                          response(200, order_for(["example.com"], profile="shortlived"), nonce="n4"),
                          response(200, order_for(["example.com"], replaces="someone-else"), nonce="n5"),
                          created(["example.com"]))
    client, clock = make_client(session)

    order = client.new_order(["example.com"], profile="classic", replaces="aki.serial")

    assert order.url == "https://ca.test/order/new"
    assert posts_to(session, NEW_ORDER) == 2
    assert clock.sleeps == [], "the second newOrder must follow the read-back, not a backoff"
    assert session.calls[-1]["body"]["payload"] == session.calls[2]["body"]["payload"]


def test_a_new_order_sent_once_more_is_not_retried_blindly_either():
    """The second send is read back the same way; with nothing created twice, the error says so."""
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"),
                          problem(500, "serverInternal", nonce="n1"), account(), orders_page([]),
                          problem(500, "serverInternal", nonce="n2"), account(), orders_page([]))
    client, clock = make_client(session)

    with pytest.raises(p.ServerInternal) as info:
        client.new_order(["example.com"])

    assert info.value.retryable and info.value.nothing_created
    assert posts_to(session, NEW_ORDER) == 2 and posts_to(session, ORDERS) == 2
    assert clock.sleeps == []


def test_a_replaces_the_ca_answers_with_5xx_twice_creating_nothing_is_dropped():
    """Pebble answers a ``replaces`` it cannot match with a 500: once the orders list shows the
    two tries created nothing, that is a refusal and the renewal orders without ``replaces``."""
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"),
                          problem(500, "serverInternal", nonce="n1"), account(), orders_page([]),
                          problem(500, "serverInternal", nonce="n2"), account(), orders_page([]),
                          problem(400, "rejectedIdentifier", nonce="n3"))  # ends the test's issuance
    client, _ = make_client(session)

    with pytest.raises(p.RejectedIdentifier):
        issue_certificate(client, ["example.com"], KEY, RecordingSolver(), replaces="aki.serial",
                          profile="classic")

    sent = [c["body"]["payload"] for c in session.calls if c["method"] == "POST" and c["url"] == NEW_ORDER]
    payloads = [json.loads(jws.b64url_decode(body)) for body in sent]
    assert [pl.get("replaces") for pl in payloads] == ["aki.serial", "aki.serial", None]


def test_without_an_orders_url_a_lost_new_order_is_left_to_the_next_attempt():
    """Let's Encrypt's accounts have no ``orders``: nothing to re-read, so the lost answer's
    retryable error surfaces (the caller's backoff takes it) and newOrder is not repeated."""
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"),
                          problem(500, "serverInternal", nonce="n1"), account(orders=None))
    client, clock = make_client(session)

    with pytest.raises(p.ServerInternal) as info:
        client.new_order(["example.com"])

    assert info.value.retryable and info.value.url == NEW_ORDER
    assert posts_to(session, NEW_ORDER) == 1 and posts_to(session, ACCOUNT) == 1
    assert clock.sleeps == []


def test_an_orders_list_that_never_ends_cannot_tell_and_is_not_followed_forever():
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"),
                          problem(500, "serverInternal", nonce="n1"), account(),
                          orders_page(["https://ca.test/order/1"], next_url=ORDERS),  # points at itself
                          created(["example.com"]))
    client, _ = make_client(session)

    with pytest.raises(p.ServerInternal):
        client.new_order(["example.com"])

    assert posts_to(session, NEW_ORDER) == 1
    assert posts_to(session, ORDERS) == 1


def test_a_refused_connection_is_retried_for_new_order():
    """A connection that was never made proves the CA saw nothing: retried with backoff, no
    read-back."""
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"), requests.ConnectionError(REFUSED),
                          response(200, nonce="n1"), created(["example.com"]))
    client, clock = make_client(session)

    assert client.new_order(["example.com"]).url == "https://ca.test/order/new"
    assert posts_to(session, NEW_ORDER) == 2 and len(clock.sleeps) == 1
    assert posts_to(session, ACCOUNT) == 0


@pytest.mark.parametrize("lost", [problem(500, "serverInternal", nonce="n1"),
                                  requests.exceptions.ReadTimeout("Read timed out.")])
def test_a_lost_renewal_order_fails_the_attempt_before_any_record_and_is_not_reordered(lost):
    """issue_certificate after a lost newOrder that carried ``replaces``: the retryable error
    is no refusal of ``replaces``, so no second order without it; no challenge record made."""
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"), lost)
    if not isinstance(lost, requests.Response):
        session.add(response(200, nonce="n1"))
    session.add(account(orders=None))
    client, _ = make_client(session)
    solver = RecordingSolver()

    with pytest.raises(p.AcmeError) as info:
        issue_certificate(client, ["example.com"], KEY, solver, replaces="aki.serial", profile="classic")

    assert info.value.retryable and info.value.url == NEW_ORDER
    assert posts_to(session, NEW_ORDER) == 1
    assert solver.presented == []
