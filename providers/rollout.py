"""Waiting for a certificate change to reach an edge network: CDN and DCDN alike.

Both accept a binding at once and push it to their edge nodes asynchronously, and both report
the rollout through a per-domain certificate read (``Status`` of DescribeDomainCertificateInfo /
DescribeDcdnDomainCertificateInfo). So the wait is the same story for both: read until the
domain reports our certificate as settled (a retryable read error is just another "not yet"),
fail early when the API reports our certificate's rollout as failed, then, when ``[verify]
tls`` is on, shake hands with the edge until it presents our leaf. Keeping it in one place keeps
the two providers' verdicts and messages identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from daemon.durations import format_duration
from providers.base import (
    Binding,
    CertificateBundle,
    CredentialError,
    ProviderContext,
    ProviderError,
    VerificationError,
)
from providers.tls import wait_for, wait_for_edge


def wait_for_rollout(provider: str, domain: str, read: Callable[[], Binding],
                     bundle: CertificateBundle, *, deadline: float, ctx: ProviderContext,
                     clock: Callable[[], float], intervals: Sequence[float]) -> Binding:
    """Return the settled binding of ``domain`` (the name as the user wrote it, also the TLS
    name) once it serves ``bundle``; raise VerificationError at ``deadline`` or when the API
    reports that our rollout failed."""
    started = clock()
    last: list[str] = ["has not answered"]

    def settled() -> Binding | None:
        try:
            binding = read()
        except CredentialError:
            raise
        except ProviderError as exc:
            if not exc.retryable:
                raise
            last[0] = f"could not be read ({exc})"
            return None
        ours = binding.fingerprint == bundle.fingerprint
        if ours and binding.state == "ok":
            return binding
        if ours and binding.state == "error":
            raise VerificationError(f"{provider}: {domain}: the rollout failed ({binding.detail})")
        if not ours:
            last[0] = (f"still serves serial {binding.serial}" if binding.serial
                       else f"serves no certificate ({binding.detail or binding.state})")
        else:
            last[0] = f"is still rolling out ({binding.detail or binding.state})"
        return None

    binding = wait_for(settled, deadline=deadline, stop=ctx.stop, what=f"{provider}: {domain}",
                       clock=clock, intervals=intervals)
    if binding is None:
        raise VerificationError(f"{provider}: {domain} {last[0]} after "
                                f"{format_duration(clock() - started)}")
    verify = ctx.config.verify
    if verify.tls:
        wait_for_edge(provider, domain, bundle, connect_to=verify.connect_to, deadline=deadline,
                      stop=ctx.stop, started=started, clock=clock, intervals=intervals)
    return binding
