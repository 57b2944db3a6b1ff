"""Step 2 of a cycle: decide per certificate whether it is due.

The decision itself is pure (``daemon.planner``); this step gathers its inputs: the stored
chain, the runtime record (failure backoff, revocation) and, when due, the CA's renewal
information (RFC 9773), which is remembered until its Retry-After.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from daemon import planner
from daemon.config import CertificateConfig
from daemon.errors import describe_error
from daemon.outcomes import CertOutcome, parse_time, rfc3339
from daemon.state import StoredCertificate

if TYPE_CHECKING:
    from daemon.cycle import Cycle

log = logging.getLogger("alicertd")


def plan_certificate(cycle: Cycle, cert: CertificateConfig, forced: bool
                      ) -> tuple[CertOutcome, StoredCertificate | None]:
    now = cycle.clock()
    runtime = {}
    try:
        current = cycle.store.read_certificate(cert.name)
        runtime = cycle.store.read_runtime(cert.name)
        issued = _issued_state(cycle, cert, current, runtime)
    except Exception as exc:  # noqa: BLE001 - a corrupt state file fails this cert only
        text = describe_error(exc)[1]
        decision = planner.CertDecision(cert.name, False, f"cannot read state: {text}")
        return CertOutcome(cert.name, decision, action="failed", error=text), None
    failure = None
    if runtime.get("failures"):
        last = parse_time(runtime.get("last_failure"))
        nxt = parse_time(runtime.get("next_attempt"))
        if last and nxt:
            failure = planner.FailureState(int(runtime["failures"]), last, nxt)
    renew_days = cert.renew_before_days or cycle.config.acme.renew_before_days
    if renew_days is not None and issued is not None and \
            timedelta(days=renew_days) >= issued.not_after - issued.not_before:
        # A fixed window as long as the certificate would reissue it every cycle (and hit the
        # CA's duplicate-certificate limit within days): the ARI or lifetime rule decides.
        log.warning("renew_before_days = %d is at or above this certificate's lifetime (%s); ignoring it",
                    renew_days, issued.not_after - issued.not_before, extra={"certificate": cert.name})
        renew_days = None
    revoked = issued is not None and runtime.get("revoked_serial") == issued.serial
    decision = planner.plan_certificate(cert, issued, renew_before_days=renew_days,
                                        force=forced or revoked, now=now, failure=failure)
    if revoked and not forced:
        decision = planner.CertDecision(cert.name, True, "revoked", None)
    outcome = CertOutcome(cert.name, decision, ca_error=cycle.ari_errors.get(cert.name))
    outcome.schedule = planner.renewal_schedule(cert.name, issued, renew_days, failure=failure, now=now) \
        if not decision.due else planner.RenewalSchedule(now, decision.reason, now)
    if issued is not None:
        outcome.serial, outcome.not_after = issued.serial, issued.not_after
    return outcome, current

def _issued_state(cycle: Cycle, cert: CertificateConfig, current: StoredCertificate | None,
                  runtime: dict[str, Any]) -> planner.IssuedState | None:
    if current is None:
        return None
    from daemon.keys import certificate_info
    info = certificate_info(current.fullchain_pem)
    ari = runtime.get("ari") or {}
    window = None
    if ari.get("serial") == info.serial and ari.get("start") and ari.get("end"):
        window = (parse_time(ari["start"]), parse_time(ari["end"]))
    retry_after = parse_time(ari.get("retry_after")) if window else None
    issued = planner.IssuedState(serial=info.serial, not_before=info.not_before,
                                 not_after=info.not_after,
                                 domains=tuple(current.meta.get("domains") or info.sans),
                                 key_type=current.meta.get("key_type") or info.key_type,
                                 ari_window=window, ari_retry_after=retry_after)
    # Asked even with a fixed renew_before_days: a CA's "renew now" (an incident, a mass
    # revocation: a window already in the past) must win over any fixed window.
    if planner.ari_refresh_due(issued, cycle.clock()):
        issued = _refresh_ari(cycle, cert, current, issued, runtime)
    return issued

def _refresh_ari(cycle: Cycle, cert, current, issued, runtime):
    """Ask the CA's renewalInfo (RFC 9773) and remember the answer until its Retry-After."""
    try:
        info = cycle.issuer().renewal_info(current.fullchain_pem)
    except Exception as exc:  # noqa: BLE001 - ARI is advisory: fall back to the lifetime rule
        text = describe_error(exc)[1]
        log.warning("renewal information unavailable: %s", text, extra={"certificate": cert.name})
        cycle.ari_errors[cert.name] = text
        return issued
    if info is None:
        return issued
    start, end, retry_after, explanation = (*info, None)[:4]
    previous = runtime.get("ari") or {}
    if explanation and previous.get("explanation_url") != explanation:
        # CAs link an incident report here when they ask for early renewal: say it once.
        log.warning("the CA explains its renewal window at %s", explanation, extra={"certificate": cert.name})
    runtime["ari"] = {"serial": issued.serial, "start": rfc3339(start), "end": rfc3339(end),
                      "retry_after": rfc3339(retry_after), "explanation_url": explanation}
    cycle.pending_runtime[cert.name] = runtime
    return planner.IssuedState(serial=issued.serial, not_before=issued.not_before,
                               not_after=issued.not_after, domains=issued.domains,
                               key_type=issued.key_type, ari_window=(start, end),
                               ari_retry_after=retry_after)
