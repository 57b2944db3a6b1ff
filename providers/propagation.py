"""Wait until the authoritative nameservers serve TXT values — for any DNS provider.

Why ask the authoritative servers directly: a recursive resolver may hold a stale (negative)
answer for the zone's TTL (600 s on the Alidns free edition), while the CA asks the
authoritative servers. So: query every authoritative server (UDP, TCP on truncation) until each
returns every expected value, polling at a short interval that grows (0.2 s → 2 s), against a
deadline, watching the stop event. No fixed sleeps. A server that answers SERVFAIL, REFUSED or
nothing is asked again; only the deadline ends the wait.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from providers.base import ProviderError

DNS_PORT = 53
FIRST_INTERVAL = 0.2
MAX_INTERVAL = 0.5  # a UDP query per nameserver: cheap, and it bounds the overhead beyond the real delay
GROWTH = 1.5
QUERY_TIMEOUT = 2.0


@dataclass(frozen=True)
class Nameserver:
    """One server to ask: ``address`` is an IP literal; ``label`` what the user/zone called it."""

    address: str
    port: int = DNS_PORT
    label: str = ""

    def __str__(self) -> str:
        where = f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"
        return f"{self.label} ({where})" if self.label and self.label != self.address else where


# --------------------------------------------------------------------------- names


def to_ascii(name: str) -> str:
    """A DNS name in ASCII (punycode, IDNA 2008 where possible), lowercase, no trailing dot.
    Labels already ASCII are left alone (``_acme-challenge`` is no valid IDNA label)."""
    name = name.strip().rstrip(".")
    labels = []
    for label in name.split("."):
        if label.isascii():
            labels.append(label.lower())
            continue
        try:
            import idna

            labels.append(idna.encode(label, uts46=True).decode("ascii"))
        except Exception:  # idna missing or stricter than the name: fall back on IDNA 2003
            labels.append(label.encode("idna").decode("ascii").lower())
    return ".".join(labels)


def parse_server(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address → (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else DNS_PORT
        return host, port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, DNS_PORT


def resolve_nameservers(entries: Iterable[str], *, log: logging.Logger | None = None,
                        resolver: Callable[[str], list[str]] | None = None) -> list[Nameserver]:
    """Turn ``host``/``host:port`` entries into addresses (every A/AAAA of a host name).

    A name that does not resolve is skipped with a warning; none resolving raises."""
    resolve = resolver or _addresses
    servers: list[Nameserver] = []
    failed: list[str] = []
    for entry in entries:
        host, port = parse_server(entry)
        try:
            ipaddress.ip_address(host)
            addrs = [host]
        except ValueError:
            try:
                addrs = resolve(host)
            except (OSError, dns.exception.DNSException):
                addrs = []
        if not addrs:
            failed.append(host)
            if log:
                log.warning("nameserver %s does not resolve; not checking it", host)
        for a in addrs:
            ns = Nameserver(a, port, host)
            if ns not in servers:
                servers.append(ns)
    if not servers:
        raise ProviderError(f"cannot resolve any nameserver to check propagation ({', '.join(failed)})")
    return servers


def _addresses(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)
    seen: list[str] = []
    for info in infos:
        addr = info[4][0]
        if addr not in seen:
            seen.append(addr)
    return seen


# --------------------------------------------------------------------------- queries


def query_txt(fqdn: str, server: Nameserver, timeout: float) -> tuple[str, set[str]]:
    """Ask ``server`` for TXT at ``fqdn`` without recursion. Returns (status, values): status
    is ``NOERROR``, ``NXDOMAIN``, another rcode name, or ``timeout``/``error: …``."""
    qname = dns.name.from_text(fqdn)
    query = dns.message.make_query(qname, dns.rdatatype.TXT)
    query.flags &= ~dns.flags.RD
    try:
        response, _tcp = dns.query.udp_with_fallback(query, server.address, timeout=timeout,
                                                     port=server.port)
    except dns.exception.Timeout:
        return "timeout", set()
    except (OSError, dns.exception.DNSException) as exc:
        return f"error: {type(exc).__name__}", set()
    rcode = response.rcode()
    values: set[str] = set()
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.TXT and rrset.name == qname:
            for rdata in rrset:
                values.add(b"".join(rdata.strings).decode("utf-8", "replace"))
    return dns.rcode.to_text(rcode), values


def wait_for_txt(expected: Mapping[str, Collection[str]],
                 servers: Mapping[str, Sequence[Nameserver]], deadline: float, *,
                 log: logging.Logger, stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic, prefix: str = "dns",
                 first_interval: float = FIRST_INTERVAL, max_interval: float = MAX_INTERVAL,
                 query: Callable[[str, Nameserver, float], tuple[str, set[str]]] = query_txt,
                 sleep: Callable[[float], None] | None = None) -> float:
    """Return when, for every ``fqdn`` in ``expected``, every server in ``servers[fqdn]``
    answers TXT with all the expected values (others may be there too). Returns the seconds
    it took. Raises ProviderError (message starting with ``prefix``) at ``deadline``
    (a ``clock()`` value) or when ``stop`` is set, naming what was still missing."""
    start = clock()
    pending: dict[tuple[str, Nameserver], str] = {}
    for fqdn in expected:
        if not servers.get(fqdn):
            raise ProviderError(f"{prefix}: no nameserver to check {fqdn} against")
        for ns in servers[fqdn]:
            pending[(fqdn, ns)] = "not asked yet"
    wanted = {fqdn: {str(v) for v in values} for fqdn, values in expected.items()}
    all_servers = {ns for (_, ns) in pending}
    interval = first_interval
    while True:
        for (fqdn, ns) in list(pending):
            remaining = deadline - clock()
            if remaining <= 0:
                break
            status, values = query(fqdn, ns, max(0.05, min(QUERY_TIMEOUT, remaining)))
            missing = wanted[fqdn] - values
            if status == "NOERROR" and not missing:
                del pending[(fqdn, ns)]
            else:
                have = len(wanted[fqdn]) - len(missing)
                pending[(fqdn, ns)] = (f"{status}, {have} of {len(wanted[fqdn])} values"
                                       if status in ("NOERROR", "NXDOMAIN") else status)
        if not pending:
            elapsed = clock() - start
            log.info("%s: propagated to %d nameservers in %.2f s", prefix, len(all_servers), elapsed)
            return elapsed
        now = clock()
        if now >= deadline:
            detail = "; ".join(f"{fqdn} at {ns}: {why}" for (fqdn, ns), why in list(pending.items())[:4])
            more = f" (and {len(pending) - 4} more)" if len(pending) > 4 else ""
            raise ProviderError(f"{prefix}: TXT records not visible on every authoritative "
                                f"nameserver after {now - start:.0f} s ([dns] propagation_timeout): {detail}{more}",
                                retryable=True)
        pause = min(interval, deadline - now)
        interval = min(max_interval, interval * GROWTH)
        if sleep is not None:
            sleep(pause)
        elif stop is not None:
            if stop.wait(pause):
                raise ProviderError(f"{prefix}: waiting for propagation cancelled (shutting down)",
                                    retryable=True)
        else:
            _sleep_until(clock, now + pause)
        if stop is not None and stop.is_set():
            raise ProviderError(f"{prefix}: waiting for propagation cancelled (shutting down)",
                                retryable=True)


def _sleep_until(clock: Callable[[], float], until: float) -> None:
    # Without a stop event there is nothing to wake us early; an Event gives one code path.
    threading.Event().wait(max(0.0, until - clock()))
