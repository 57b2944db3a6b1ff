"""Transport and client plumbing against a scripted HTTP session and a fake clock: nonces,
badNonce and 5xx retries, Retry-After and deadlines, problem documents, Link headers, polling."""

from __future__ import annotations

import email.utils

import pytest
import requests

from daemon import __version__, keys
from daemon.acme import problems as p
from daemon.acme.client import AcmeClient
from daemon.acme.directory import Directory
from daemon.acme.transport import Transport, links_of, parse_retry_after
from tests.acme.fakes import DIRECTORY, FakeClock, FakeSession, problem, response

KEY = keys.generate_private_key("ec256")


def make_transport(session, clock=None, **kw):
    clock = clock or FakeClock()
    t = Transport(session=session, clock=clock, sleep=clock.sleep, ca_bundle="/tmp/ca.pem", timeout=7, **kw)
    t.new_nonce_url = "https://ca.test/nonce"
    return t, clock


def test_head_nonce_only_when_none_in_hand_and_headers():
    session = FakeSession(response(200, nonce="n1"), response(200, {"ok": 1}, nonce="n2"),
                          response(200, {"ok": 2}, nonce="n3"))
    t, _ = make_transport(session)
    assert t.post("https://ca.test/a", {"x": 1}, key=KEY, kid="https://ca.test/acct/1").json() == {"ok": 1}
    t.post("https://ca.test/b", None, key=KEY, kid="https://ca.test/acct/1")
    assert [c["method"] for c in session.calls] == ["HEAD", "POST", "POST"]
    assert session.protected(1)["nonce"] == "n1" and session.protected(2)["nonce"] == "n2"
    post = session.calls[1]
    assert post["headers"]["Content-Type"] == "application/jose+json"
    assert post["timeout"] == 7 and post["verify"] == "/tmp/ca.pem"
    assert session.headers["User-Agent"] == f"alicertd/{__version__}"
    assert t.round_trips == 3


def test_bad_nonce_is_retried_with_the_fresh_nonce():
    session = FakeSession(response(200, nonce="n1"), problem(400, "badNonce", nonce="fresh"),
                          response(201, {"ok": True}, nonce="n3"))
    t, clock = make_transport(session)
    assert t.post("https://ca.test/a", {}, key=KEY, kid="k").status == 201
    assert session.protected(2)["nonce"] == "fresh"
    assert [c["method"] for c in session.calls] == ["HEAD", "POST", "POST"]  # no second HEAD
    assert clock.sleeps == []


def test_bad_nonce_retries_are_bounded():
    session = FakeSession(response(200, nonce="n0"), *[problem(400, "badNonce", nonce=f"n{i}") for i in range(1, 5)])
    t, _ = make_transport(session, max_bad_nonce=3)
    with pytest.raises(p.BadNonce, match=r"gave up after 4 attempts"):
        t.post("https://ca.test/a", {}, key=KEY, kid="k")
    assert len(session.calls) == 5  # HEAD + first try + 3 retries


def test_5xx_retried_with_backoff_and_retry_after():
    session = FakeSession(response(200, nonce="n0"),
                          problem(503, "serverInternal", nonce="n1", headers={"Retry-After": "3"}),
                          response(500, b"<html>oops</html>", nonce="n2"),
                          response(200, {"done": 1}, nonce="n3"))
    t, clock = make_transport(session, backoff=(0.5, 1.0))
    assert t.post("https://ca.test/a", {}, key=KEY, kid="k").json() == {"done": 1}
    assert clock.sleeps[0] >= 3.0  # the server's Retry-After beats our shorter backoff
    assert 0.5 <= clock.sleeps[1] <= 1.5  # jittered 1.0
    assert len(clock.sleeps) == 2


def test_retry_after_never_past_the_deadline():
    session = FakeSession(response(200, nonce="n0"),
                          problem(503, "serverInternal", nonce="n1", headers={"Retry-After": "120"}))
    t, clock = make_transport(session)
    with pytest.raises(p.ServerInternal):
        t.post("https://ca.test/a", {}, key=KEY, kid="k", deadline=clock() + 60)
    assert clock.sleeps == []


def test_connection_errors_retried_then_one_line_error():
    session = FakeSession(*[requests.ConnectionError("Max retries exceeded (Caused by NewConnectionError("
                                                     "'<urllib3.connection.HTTPSConnection object at 0x1>: "
                                                     "Failed to establish a new connection: [Errno 111] "
                                                     "Connection refused'))")] * 3)
    t, clock = make_transport(session, backoff=(0.1, 0.2))
    with pytest.raises(p.AcmeUnreachable) as info:
        t.get("https://ca.test/dir")
    assert len(session.calls) == 3 and len(clock.sleeps) == 2
    message = str(info.value)
    assert "\n" not in message and "https://ca.test/dir" in message and "Connection refused" in message
    assert info.value.retryable


def test_problem_statuses_and_extras_from_headers():
    session = FakeSession(response(200, nonce="n0"),
                          problem(429, "rateLimited", nonce="n1", headers={"Retry-After": "3600"}),
                          problem(403, "userActionRequired", nonce="n2",
                                  headers={"Link": '<https://ca.test/tos2>;rel="terms-of-service"'}))
    t, clock = make_transport(session)
    with pytest.raises(p.RateLimited) as rl:
        t.post("https://ca.test/order", {}, key=KEY, kid="k")
    assert rl.value.retry_after == 3600 and rl.value.status == 429 and clock.sleeps == []
    with pytest.raises(p.UserActionRequired) as ua:
        t.post("https://ca.test/order", {}, key=KEY, kid="k")
    assert ua.value.tos_url == "https://ca.test/tos2"


@pytest.mark.parametrize("status, body", [(200, b"<html>hello</html>"), (404, b"not found"), (200, b"[1, 2]")])
def test_unexpected_bodies_name_url_and_status(status, body):
    session = FakeSession(response(status, body))
    t, _ = make_transport(session)
    with pytest.raises(p.AcmeProtocolError) as info:
        t.get("https://ca.test/thing").json()
    assert "https://ca.test/thing" in str(info.value) and f"HTTP {status}" in str(info.value)
    assert "\n" not in str(info.value)


def test_link_headers_several_alternates():
    headers = {"Link": '<https://ca.test/cert/1/alt/1>;rel="alternate", </cert/1/alt/2>; rel=alternate, '
                       '<https://ca.test/dir>;rel="index"'}
    assert links_of(headers, "alternate", "https://ca.test/cert/1") == [
        "https://ca.test/cert/1/alt/1", "https://ca.test/cert/1/alt/2"]
    assert links_of(headers, "index", "https://ca.test/") == ["https://ca.test/dir"]
    assert links_of({}, "alternate", "https://ca.test/") == []


def test_parse_retry_after():
    now = 1_700_000_000.0
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now + 90, usegmt=True), now) == pytest.approx(90, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


def test_directory_ignores_unknown_fields_and_reads_meta():
    d = Directory.from_json("https://ca.test/dir", DIRECTORY)
    assert d.renewal_info == "https://ca.test/ari" and d.new_authz is None
    assert d.meta.profiles == {"classic": "the usual"} and not d.meta.external_account_required
    with pytest.raises(p.AcmeProtocolError, match="'newOrder'"):
        Directory.from_json("https://ca.test/dir", {k: v for k, v in DIRECTORY.items() if k != "newOrder"})
    d.check_profile("classic")
    with pytest.raises(p.AcmeConfigError, match=r"acme.profile = 'shortlived'.*offered: classic"):
        d.check_profile("shortlived")


def order_json(status: str) -> dict:
    return {"status": status, "identifiers": [{"type": "dns", "value": "a.test"}],
            "authorizations": ["https://ca.test/authz/1"], "finalize": "https://ca.test/fin/1"}


def make_client(session: FakeSession) -> tuple[AcmeClient, FakeClock]:
    clock = FakeClock()
    transport = Transport(session=session, clock=clock, sleep=clock.sleep)
    return AcmeClient("https://ca.test/dir", KEY, account_url="https://ca.test/acct/1", transport=transport), clock


def test_poll_honours_retry_after_and_intervals():
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"),
                          response(200, order_json("processing"), nonce="n1", headers={"Retry-After": "4"}),
                          response(200, order_json("processing"), nonce="n2"),
                          response(200, order_json("valid"), nonce="n3"))
    client, clock = make_client(session)
    order = client.poll_order("https://ca.test/order/1", deadline=clock() + 100)
    assert order.status == "valid"
    assert clock.sleeps == [4.0, client.poll_intervals[1]]


def test_poll_stops_at_the_deadline_after_a_last_look():
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"),
                          response(200, order_json("processing"), nonce="n1", headers={"Retry-After": "600"}),
                          response(200, order_json("processing"), nonce="n2"))
    client, clock = make_client(session)
    start = clock()
    with pytest.raises(p.AcmeTimeout, match="still processing"):
        client.poll_order("https://ca.test/order/1", deadline=start + 30)
    assert clock.sleeps == [30.0]  # Retry-After 600 cut to the deadline, then one last fetch
    assert clock() == start + 30


def test_malformed_order_is_a_protocol_error_not_a_key_error():
    session = FakeSession(response(200, DIRECTORY), response(200, nonce="n0"),
                          response(200, {"status": "pending"}, nonce="n1"))
    client, _ = make_client(session)
    with pytest.raises(p.AcmeProtocolError, match=r"malformed order.*https://ca.test/order/1.*HTTP 200"):
        client.get_order("https://ca.test/order/1")
