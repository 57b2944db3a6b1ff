"""Verify, the way every deploy provider does it: read the binding back through the API until
it reports our certificate settled, then shake hands with the edge.

Every target kind accepts a change at once and applies it on its own time (a CDN pushes it to
its edge nodes, a load balancer listener goes through Configuring, ESA and OSS attach it), so
``verify`` is one story everywhere: call the provider's ``probe`` until it returns the settled
Binding; a retryable read error or a "not yet" reason (a string) means "ask again", and the
last reason is what the VerificationError at the deadline says. Then, when ``[verify] tls`` is
on, a TLS handshake per host until the edge presents our leaf. One implementation keeps the
verdicts, the messages and the deadline handling identical across providers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from daemon.durations import format_duration
from providers.base import (
    Binding,
    CertificateBundle,
    CredentialError,
    ProviderContext,
    ProviderError,
    VerificationError,
)
from providers.certnames import fingerprint_prefix, leaf_of_pem
from providers.tls import wait_for, wait_for_edge

#: What ``probe`` returns: the settled binding, or why the target is not there yet.
Outcome = Binding | str


def wait_for_readback(label: str, probe: Callable[[], Outcome], *, deadline: float,
                      ctx: ProviderContext, clock: Callable[[], float],
                      intervals: Sequence[float], started: float, what: str | None = None) -> Binding:
    """Return the Binding ``probe`` settles on; raise VerificationError ``"<label> <reason>
    after <duration since started>"`` at ``deadline``. ``probe`` may raise to fail at once (a
    non-retryable ProviderError, VerificationError); credential errors always propagate.
    ``what`` names the wait in a shutdown message (default: ``label``)."""
    last: list[str] = ["has not answered"]

    def settled() -> Binding | None:
        try:
            outcome = probe()
        except CredentialError:
            raise
        except ProviderError as exc:
            if not exc.retryable:
                raise
            last[0] = f"could not be read ({exc})"
            return None
        if isinstance(outcome, str):
            last[0] = outcome
            return None
        return outcome

    binding = wait_for(settled, deadline=deadline, stop=ctx.stop, what=what or label, clock=clock,
                       intervals=intervals)
    if binding is None:
        raise VerificationError(f"{label} {last[0]} after {format_duration(clock() - started)}")
    return binding


def shake_hands(provider: str, hosts: Iterable[str], bundle: CertificateBundle, *, deadline: float,
                ctx: ProviderContext, clock: Callable[[], float], intervals: Sequence[float],
                started: float) -> None:
    """When ``[verify] tls`` is on, wait until the edge presents ``bundle``'s leaf for each host."""
    verify = ctx.config.verify
    if not verify.tls:
        return
    for host in hosts:
        wait_for_edge(provider, host, bundle, connect_to=verify.connect_to, deadline=deadline,
                      stop=ctx.stop, started=started, clock=clock, intervals=intervals)


def wait_for_rollout(provider: str, domain: str, read: Callable[[], Binding],
                     bundle: CertificateBundle, *, deadline: float, ctx: ProviderContext,
                     clock: Callable[[], float], intervals: Sequence[float]) -> Binding:
    """CDN and DCDN: ``read`` is the per-domain certificate info, whose ``Status`` reports the
    edge rollout. Settled when it reports our certificate ``ok``; a failed rollout of our
    certificate fails at once. ``domain`` is the name as the user wrote it (also the TLS name)."""
    started = clock()

    def probe() -> Outcome:
        binding = read()
        ours = binding.fingerprint == bundle.fingerprint
        if ours and binding.state == "ok":
            return binding
        if ours and binding.state == "error":
            raise VerificationError(f"{provider}: {domain}: the rollout failed ({binding.detail})")
        if not ours:
            return (f"still serves serial {binding.serial}" if binding.serial
                    else f"serves no certificate ({binding.detail or binding.state})")
        return f"is still rolling out ({binding.detail or binding.state})"

    binding = wait_for_readback(f"{provider}: {domain}", probe, deadline=deadline, ctx=ctx, clock=clock,
                                intervals=intervals, started=started)
    shake_hands(provider, (domain,), bundle, deadline=deadline, ctx=ctx, clock=clock,
                intervals=intervals, started=started)
    return binding


def listed_binding(item: Mapping[str, Any], known) -> Binding | None:
    """A Binding from one entry of CDN's DescribeCdnHttpsDomainList or DCDN's
    DescribeDcdnHttpsDomainList (the same shape), or None when the entry cannot say which
    certificate is served: a CertName alicertd did not make, one whose certificate ``known``
    (the provider's KnownCertificates) does not hold, or our certificate with a CertStatus
    other than ok/expire_soon ("mismatch", "expired"): then ask the domain itself."""
    name = item.get("CertName") or None
    prefix = fingerprint_prefix(name)
    leaf = known.lookup(prefix) if prefix else None
    if leaf is None or item.get("CertStatus") not in ("ok", "expire_soon", None):
        return None
    return Binding("ok", serial=leaf.serial, fingerprint=leaf.fingerprint, not_after=leaf.not_after,
                   cert_name=name)


def cert_info_binding(info: Mapping[str, Any] | None, *, https_field: str, pem_field: str,
                      pending: frozenset[str]) -> Binding:
    """A Binding from one entry of CDN's DescribeDomainCertificateInfo or DCDN's
    DescribeDcdnDomainCertificateInfo: the same shape under other field names (``https_field``
    on|off, the served PEM in ``pem_field``, the rollout in ``Status``: ``success`` settled,
    ``pending`` still rolling out, anything else failed)."""
    if info is None:
        return Binding("none")
    name = info.get("CertName") or None
    if str(info.get(https_field) or "").lower() != "on":
        return Binding("none", cert_name=name, detail="HTTPS is off")
    leaf = None
    if info.get(pem_field):
        try:
            leaf = leaf_of_pem(info[pem_field])
        except ValueError:
            leaf = None
    status = str(info.get("Status") or "success").lower()
    state = "ok" if status == "success" else "pending" if status in pending else "error"
    return Binding(state, serial=leaf.serial if leaf else None,
                   fingerprint=leaf.fingerprint if leaf else None,
                   not_after=leaf.not_after if leaf else None, cert_name=name,
                   detail=None if state == "ok" else f"Status {status}")
