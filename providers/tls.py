"""Seeing what a server really serves: a TLS handshake that reports the presented leaf, and the
deadline-bound poll loop the deploy providers verify with.

The handshake does not validate the chain or the host name on purpose: the question is not
"would a browser trust this" but "is it exactly our certificate", answered by comparing the
leaf's SHA-256 fingerprint with ours. (It also has to work against the sandbox's edge, whose
chain no system trusts.)
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from daemon.durations import format_duration
from providers.base import CertificateBundle, ProviderError, VerificationError
from providers.certnames import Leaf, leaf_of_der
from providers.settings import parse_host_port

T = TypeVar("T")

#: Waits between two looks at a rollout: quick at first (most settle in seconds), then backing
#: off to the last value, which repeats. Real CDN pushes take minutes.
POLL_INTERVALS: tuple[float, ...] = (0.25, 0.5, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 30.0)

#: The label put in front of a wildcard domain to get a concrete name to ask for.
WILDCARD_PROBE_LABEL = "alicertd-verify"


class HandshakeError(Exception):
    """The handshake failed (refused, reset, timed out, no certificate). One line."""


def handshake(host_or_connect_to: str, port: int, sni: str, timeout: float) -> Leaf:
    """Connect to ``host_or_connect_to`` (a host, or ``host:port`` overriding ``port``), shake
    hands with SNI ``sni`` and return the leaf the server presented."""
    address = parse_host_port(host_or_connect_to, port)
    if address is None:
        raise HandshakeError(f"invalid address {host_or_connect_to!r}")
    host, port = address
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, \
                context.wrap_socket(sock, server_hostname=sni) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise HandshakeError(f"TLS handshake with {host}:{port} (SNI {sni}) failed: "
                             f"{exc.__class__.__name__}: {exc}") from None
    if not der:
        raise HandshakeError(f"TLS handshake with {host}:{port} (SNI {sni}): no certificate presented")
    return leaf_of_der(der)


def handshake_serial(host_or_connect_to: str, port: int, sni: str, timeout: float) -> tuple[str, str]:
    """``(serial_hex, sha256_fingerprint_hex)`` of the leaf served to SNI ``sni``."""
    leaf = handshake(host_or_connect_to, port, sni, timeout)
    return leaf.serial, leaf.fingerprint


def probe_name(domain: str) -> str:
    """A concrete host name to send as SNI: ``*.static.example.com`` has no handshake of its
    own, ``alicertd-verify.static.example.com`` is served by the same binding."""
    return f"{WILDCARD_PROBE_LABEL}.{domain[2:]}" if domain.startswith("*.") else domain


def edge_for(domain: str, connect_to: str | None) -> tuple[str, int, str]:
    """Where to shake hands for ``domain``: (host, port, SNI). ``connect_to`` (``[verify]``)
    replaces the address, never the SNI."""
    sni = probe_name(domain)
    if connect_to:
        address = parse_host_port(connect_to, 443)
        if address is not None:
            return address[0], address[1], sni
    return sni, 443, sni


def wait_for(probe: Callable[[], T | None], *, deadline: float, stop: threading.Event,
             what: str, clock: Callable[[], float] = time.monotonic,
             intervals: Sequence[float] = POLL_INTERVALS) -> T | None:
    """Call ``probe`` until it returns something other than None; return that, or None once
    ``deadline`` (a ``clock()`` value) has passed. Between attempts wait along ``intervals``,
    never past the deadline, waking at once when ``stop`` is set (then ProviderError, so the
    daemon can shut down within its budget). ``probe`` runs at least once."""
    attempt = 0
    while True:
        result = probe()
        if result is not None:
            return result
        remaining = deadline - clock()
        if remaining <= 0:
            return None
        delay = min(intervals[min(attempt, len(intervals) - 1)], remaining)
        attempt += 1
        if stop.wait(delay):
            raise ProviderError(f"{what}: interrupted (shutting down)", retryable=True)


def wait_for_edge(label: str, domain: str, bundle: CertificateBundle, *, connect_to: str | None,
                  deadline: float, stop: threading.Event, started: float,
                  clock: Callable[[], float] = time.monotonic,
                  intervals: Sequence[float] = POLL_INTERVALS, timeout: float = 10.0) -> Leaf:
    """Shake hands with ``domain``'s edge (at ``connect_to`` when set) until it presents
    ``bundle``'s leaf; VerificationError naming what it serves instead once ``deadline`` passes
    (``started`` is when verification began, for the message)."""
    host, port, sni = edge_for(domain, connect_to)
    last = ["has not answered"]

    def presented() -> Leaf | None:
        try:
            leaf = handshake(host, port, sni, max(0.5, min(timeout, deadline - clock())))
        except HandshakeError as exc:
            last[0] = f"is not reachable ({exc})"
            return None
        if leaf.fingerprint == bundle.fingerprint:
            return leaf
        last[0] = f"still serves serial {leaf.serial}"
        return None

    leaf = wait_for(presented, deadline=deadline, stop=stop, what=f"{label}: {domain}",
                    clock=clock, intervals=intervals)
    if leaf is None:
        raise VerificationError(f"{label}: {domain} {last[0]} after "
                                f"{format_duration(clock() - started)}")
    return leaf
