"""Wait until the authoritative nameservers serve TXT values — for any DNS provider.

Why ask the authoritative servers directly: a recursive resolver may hold a stale (negative)
answer for the zone's TTL (600 s on the Alidns free edition), while the CA asks the
authoritative servers. So: query every authoritative server (UDP, TCP on truncation) until each
returns every expected value, polling at a short interval that grows (0.2 s → 2 s), against a
deadline, watching the stop event. No fixed sleeps. A server that answers SERVFAIL, REFUSED or
nothing is asked again; only the deadline ends the wait.

Addresses this host cannot reach are skipped, not waited for: on an IPv4-only host (most ECS
instances) the AAAA addresses of the zone's nameservers can never answer. "Cannot reach" is
decided by the kernel, synchronously, when the query is sent (``UNREACHABLE_ERRNOS``: no route,
host unreachable, address family unavailable, no source address) — never from a timeout, which
may be packet loss. Each nameserver *name* still needs at least one address that answers, and
every address not skipped must answer.
"""

from __future__ import annotations

import errno
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
#: OSError numbers from creating the socket or sending the query that mean "this host has no
#: way to that address" (Linux: ENETUNREACH without a route, e.g. no IPv6 default route;
#: EAFNOSUPPORT when IPv6 is disabled at boot; EHOSTUNREACH for an unreachable route or failed
#: neighbour discovery; EADDRNOTAVAIL when no source address of the family exists). Anything
#: else (timeouts, ECONNREFUSED on the TCP fallback) is a server that may answer later.
UNREACHABLE_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EAFNOSUPPORT,
                                errno.EADDRNOTAVAIL})
UNREACHABLE = "unreachable"  # status prefix returned by query_txt for those


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
    is ``NOERROR``, ``NXDOMAIN``, another rcode name, ``timeout``, ``unreachable: <ERRNO>``
    (this host cannot send there: see UNREACHABLE_ERRNOS) or ``error: …``."""
    qname = dns.name.from_text(fqdn)
    query = dns.message.make_query(qname, dns.rdatatype.TXT)
    query.flags &= ~dns.flags.RD
    try:
        response, _tcp = dns.query.udp_with_fallback(query, server.address, timeout=timeout,
                                                     port=server.port)
    except dns.exception.Timeout:
        return "timeout", set()
    except OSError as exc:
        if exc.errno in UNREACHABLE_ERRNOS:
            return f"{UNREACHABLE}: {errno.errorcode.get(exc.errno, exc.errno)}", set()
        return f"error: {type(exc).__name__}", set()
    except dns.exception.DNSException as exc:
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
    answers TXT with all the expected values (others may be there too), except addresses this
    host cannot reach (``query`` says ``unreachable``): those are skipped, logged once, as long
    as every nameserver name (``Nameserver.label``) keeps at least one address. Returns the
    seconds it took. Raises ProviderError (message starting with ``prefix``) at ``deadline``
    (a ``clock()`` value), when ``stop`` is set, naming what was still missing, or at once when
    no address of some nameserver name is reachable."""
    start = clock()
    pending: dict[tuple[str, Nameserver], str] = {}
    for fqdn in expected:
        if not servers.get(fqdn):
            raise ProviderError(f"{prefix}: no nameserver to check {fqdn} against")
        for ns in servers[fqdn]:
            pending[(fqdn, ns)] = "not asked yet"
    wanted = {fqdn: {str(v) for v in values} for fqdn, values in expected.items()}
    all_servers = {ns for (_, ns) in pending}
    skipped: dict[Nameserver, str] = {}
    interval = first_interval
    while True:
        for (fqdn, ns) in list(pending):
            if (fqdn, ns) not in pending:  # skipped while this round ran
                continue
            remaining = deadline - clock()
            if remaining <= 0:
                break
            status, values = query(fqdn, ns, max(0.05, min(QUERY_TIMEOUT, remaining)))
            if status.startswith(UNREACHABLE):
                _skip(ns, status, pending, skipped, servers, log=log, prefix=prefix)
                continue
            missing = wanted[fqdn] - values
            if status == "NOERROR" and not missing:
                del pending[(fqdn, ns)]
            else:
                have = len(wanted[fqdn]) - len(missing)
                pending[(fqdn, ns)] = (f"{status}, {have} of {len(wanted[fqdn])} values"
                                       if status in ("NOERROR", "NXDOMAIN") else status)
        if not pending:
            elapsed = clock() - start
            log.info("%s: propagated to %d nameservers in %.2f s", prefix,
                     len(all_servers) - len(skipped), elapsed)
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


def _skip(ns: Nameserver, status: str, pending: dict[tuple[str, Nameserver], str],
          skipped: dict[Nameserver, str], servers: Mapping[str, Sequence[Nameserver]], *,
          log: logging.Logger, prefix: str) -> None:
    """Stop waiting for ``ns`` (this host cannot reach it); raise if that leaves a nameserver
    name of some record without any address."""
    skipped[ns] = status
    for key in [k for k in pending if k[1] == ns]:
        del pending[key]
    log.info("%s: not checking nameserver %s: %s from this host (no route or address family)",
             prefix, ns, status.partition(": ")[2] or status)
    for fqdn, group in servers.items():
        name = ns.label or ns.address
        same = [s for s in group if (s.label or s.address) == name]
        if same and all(s in skipped for s in same):
            tried = ", ".join(f"{s}: {skipped[s].partition(': ')[2]}" for s in same)
            raise ProviderError(f"{prefix}: no address of nameserver {name} is reachable from "
                                f"this host, so {fqdn} cannot be checked there ({tried})",
                                retryable=True)


def _sleep_until(clock: Callable[[], float], until: float) -> None:
    # Without a stop event there is nothing to wake us early; an Event gives one code path.
    threading.Event().wait(max(0.0, until - clock()))
