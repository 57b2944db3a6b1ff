"""The generic propagation wait, with the DNS query injected (fake clock, no sockets)."""

import logging
import threading

import pytest

from providers import propagation
from providers.base import ProviderError
from providers.propagation import Nameserver, parse_server, to_ascii, wait_for_txt

LOG = logging.getLogger("test.propagation")


@pytest.mark.parametrize("text,expected", [
    ("ns1.alidns.com", ("ns1.alidns.com", 53)),
    ("127.0.0.1:15353", ("127.0.0.1", 15353)),
    ("[::1]:5353", ("::1", 5353)),
    ("::1", ("::1", 53)),
    ("2001:db8::53", ("2001:db8::53", 53)),
])
def test_parse_server(text, expected):
    assert parse_server(text) == expected


@pytest.mark.parametrize("name,expected", [
    ("_acme-challenge.Example.COM.", "_acme-challenge.example.com"),
    ("_acme-challenge.bücher.example", "_acme-challenge.xn--bcher-kva.example"),
    ("_acme-challenge.xn--bcher-kva.example", "_acme-challenge.xn--bcher-kva.example"),
])
def test_to_ascii(name, expected):
    assert to_ascii(name) == expected


def test_resolve_nameservers_keeps_ports_and_skips_unresolvable():
    servers = propagation.resolve_nameservers(
        ["127.0.0.1:15353", "ns.test:5300", "gone.test"],
        resolver=lambda h: {"ns.test": ["192.0.2.1", "192.0.2.2"]}.get(h, []))
    assert servers == [Nameserver("127.0.0.1", 15353, "127.0.0.1"), Nameserver("192.0.2.1", 5300, "ns.test"),
                       Nameserver("192.0.2.2", 5300, "ns.test")]
    with pytest.raises(ProviderError):
        propagation.resolve_nameservers(["gone.test"], resolver=lambda h: [])


class World:
    """A fake clock plus per-server answers that change over (fake) time."""

    def __init__(self):
        self.now = 100.0
        self.queries = []
        self.visible_at = {}  # (fqdn, address) -> time from which all values are served
        self.flaky = set()  # addresses answering SERVFAIL/timeout forever

    def clock(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.now += seconds

    def query(self, fqdn, ns, timeout):
        self.queries.append((self.now, fqdn, ns.address))
        if ns.address in self.flaky:
            self.now += timeout
            return "timeout", set()
        if self.now >= self.visible_at.get((fqdn, ns.address), float("inf")):
            return "NOERROR", {"v1", "v2", "other"}
        return "NOERROR", {"v1"}


def test_waits_until_every_server_serves_every_value():
    w = World()
    ns = [Nameserver("192.0.2.1"), Nameserver("192.0.2.2")]
    w.visible_at = {("_acme-challenge.example.com", "192.0.2.1"): 101.0,
                    ("_acme-challenge.example.com", "192.0.2.2"): 104.0}
    took = wait_for_txt({"_acme-challenge.example.com": {"v1", "v2"}},
                        {"_acme-challenge.example.com": ns}, 200.0, log=LOG, clock=w.clock,
                        query=w.query, sleep=w.sleep, prefix="alidns")
    assert 104.0 <= w.now < 104.0 + propagation.MAX_INTERVAL + 0.01
    assert took == pytest.approx(w.now - 100.0)
    # the poll interval grows from 0.2 s but never beyond 2 s
    times = sorted({t for t, _, a in w.queries if a == "192.0.2.2"})
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps[0] == pytest.approx(0.2) and max(gaps) <= 2.0 + 1e-9


def test_deadline_names_what_is_missing():
    w = World()
    w.flaky = {"192.0.2.9"}
    w.visible_at = {("a.example.com", "192.0.2.1"): 0.0}
    with pytest.raises(ProviderError) as info:
        wait_for_txt({"a.example.com": {"v1", "v2"}},
                     {"a.example.com": [Nameserver("192.0.2.1"), Nameserver("192.0.2.9")]},
                     110.0, log=LOG, clock=w.clock, query=w.query, sleep=w.sleep, prefix="alidns")
    msg = str(info.value)
    assert msg.startswith("alidns: ") and "192.0.2.9" in msg and "timeout" in msg
    assert info.value.retryable
    assert w.now <= 110.0 + propagation.QUERY_TIMEOUT


def test_a_failing_server_is_asked_again_until_it_recovers():
    w = World()
    calls = {"n": 0}

    def query(fqdn, ns, timeout):
        calls["n"] += 1
        if calls["n"] < 4:
            return "SERVFAIL", set()
        return "NOERROR", {"v1"}

    wait_for_txt({"a.example.com": {"v1"}}, {"a.example.com": [Nameserver("192.0.2.1")]}, 200.0,
                 log=LOG, clock=w.clock, query=query, sleep=w.sleep)
    assert calls["n"] == 4


def test_stop_event_aborts_the_wait():
    stop = threading.Event()
    stop.set()
    w = World()
    with pytest.raises(ProviderError, match="cancelled"):
        wait_for_txt({"a.example.com": {"v1", "v2"}}, {"a.example.com": [Nameserver("192.0.2.1")]},
                     1e9, log=LOG, stop=stop, clock=w.clock, query=w.query)


def test_logs_propagation_time(caplog):
    w = World()
    w.visible_at = {("a.example.com", "192.0.2.1"): 0.0}
    with caplog.at_level(logging.INFO, logger="test.propagation"):
        wait_for_txt({"a.example.com": {"v1", "v2"}}, {"a.example.com": [Nameserver("192.0.2.1")]},
                     200.0, log=LOG, clock=w.clock, query=w.query, sleep=w.sleep, prefix="alidns")
    assert any("propagated to 1 nameservers in" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- unreachable addresses


def _unreachable_world(unreachable):
    w = World()

    def query(fqdn, ns, timeout):
        w.queries.append((w.now, fqdn, ns.address))
        if ns.address in unreachable:
            return "unreachable: ENETUNREACH", set()
        if ns.address in w.flaky:
            w.now += timeout
            return "timeout", set()
        return "NOERROR", {"v1"}
    return w, query


def test_unreachable_addresses_are_skipped_once_logged(caplog):
    w, query = _unreachable_world({"2001:db8::1", "2001:db8::2"})
    ns = [Nameserver("192.0.2.1", label="ns1.test"), Nameserver("2001:db8::1", label="ns1.test"),
          Nameserver("192.0.2.2", label="ns2.test"), Nameserver("2001:db8::2", label="ns2.test")]
    with caplog.at_level(logging.INFO, logger="test.propagation"):
        wait_for_txt({"a.example.com": {"v1"}, "b.example.com": {"v1"}},
                     {"a.example.com": ns, "b.example.com": ns}, 200.0, log=LOG, clock=w.clock,
                     query=query, sleep=w.sleep, prefix="alidns")
    asked_v6 = [a for _, _, a in w.queries if ":" in a]
    assert sorted(asked_v6) == ["2001:db8::1", "2001:db8::2"]  # each asked once, then skipped
    skipped = [r.getMessage() for r in caplog.records if "not checking nameserver" in r.getMessage()]
    assert len(skipped) == 2 and all("ENETUNREACH" in m for m in skipped)
    assert any("propagated to 2 nameservers" in r.getMessage() for r in caplog.records)


def test_every_reachable_address_is_still_required():
    w, query = _unreachable_world({"2001:db8::1"})
    w.flaky = {"192.0.2.9"}
    ns = [Nameserver("192.0.2.1", label="ns1.test"), Nameserver("192.0.2.9", label="ns1.test"),
          Nameserver("2001:db8::1", label="ns1.test")]
    with pytest.raises(ProviderError, match="192.0.2.9.*timeout"):
        wait_for_txt({"a.example.com": {"v1"}}, {"a.example.com": ns}, 110.0, log=LOG,
                     clock=w.clock, query=query, sleep=w.sleep, prefix="alidns")


def test_a_name_without_any_reachable_address_fails_at_once():
    w, query = _unreachable_world({"2001:db8::1", "2001:db8::2"})
    ns = [Nameserver("192.0.2.1", label="ns1.test"), Nameserver("2001:db8::1", label="ns2.test"),
          Nameserver("2001:db8::2", label="ns2.test")]
    with pytest.raises(ProviderError) as info:
        wait_for_txt({"a.example.com": {"v1"}}, {"a.example.com": ns}, 1e9, log=LOG,
                     clock=w.clock, query=query, sleep=w.sleep, prefix="alidns")
    msg = str(info.value)
    assert msg.startswith("alidns: no address of nameserver ns2.test is reachable")
    assert "2001:db8::1" in msg and "2001:db8::2" in msg and w.now < 101


def test_query_txt_reports_unreachable_from_the_kernel(monkeypatch):
    """query_txt turns the kernel's synchronous refusals into ``unreachable``, and nothing else."""
    import errno

    import dns.query

    from providers.propagation import query_txt

    def refuse(code):
        def udp(*a, **kw):
            raise OSError(code, "refused by test")
        return udp

    for code, expect in [(errno.ENETUNREACH, "unreachable: ENETUNREACH"),
                         (errno.EAFNOSUPPORT, "unreachable: EAFNOSUPPORT"),
                         (errno.EHOSTUNREACH, "unreachable: EHOSTUNREACH"),
                         (errno.ECONNREFUSED, "error: ConnectionRefusedError")]:
        monkeypatch.setattr(dns.query, "udp_with_fallback", refuse(code))
        assert query_txt("a.example.com", Nameserver("2001:db8::1"), 1.0)[0] == expect
