"""After a cycle: tell people (notifications) and machines (metrics) what happened.

Kept apart from the cycle so that the cycle stays about certificates; ``--run-now`` and the
daemon both report through here (``--run-now`` from a timer unit must still notify).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from daemon.config import Config
from daemon.cycle import CycleResult, rfc3339
from daemon.state import StateStore

log = logging.getLogger("alicertd")


def report_cycle(config: Config, store: StateStore, result: CycleResult, *, metrics=None,
                 now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    if metrics is not None:
        _update_metrics(metrics, result, now)
    if config.notify:
        from daemon.notify import Notifier
        notifier = Notifier(config.notify, log)
        for event in cycle_events(result, now):
            notifier.send(event)


def escaped_error_result(exc: BaseException, now: datetime | None = None) -> CycleResult:
    """A cycle that could not run (an error escaped it: a read-only or full disk, a bug) as a
    failed result, so that it is reported wherever a failed certificate is."""
    from daemon.errors import describe_error
    now = now or datetime.now(UTC)
    return CycleResult(started=now, finished=now, errors=[f"the cycle could not run: {describe_error(exc)[1]}"])


def cycle_events(result: CycleResult, now: datetime) -> list:
    from daemon.notify import Event
    events = []
    for c in result.certificates:
        if c.action == "issued":
            events.append(Event("renewal", c.name, f"alicertd: {c.name} renewed" if c.renewed
                                else f"alicertd: {c.name} issued",
                                f"Certificate {c.name} was issued: serial {c.serial}, valid until "
                                f"{rfc3339(c.not_after)}.",
                                {"serial": c.serial, "not_after": rfc3339(c.not_after),
                                 "reason": c.decision.reason}))
        if c.action != "issued" and c.not_after is not None:
            days_left = int((c.not_after - now).total_seconds() // 86400)
            if c.decision.due or c.action == "failed":
                events.append(Event("expiring", c.name, f"alicertd: {c.name} expires in {days_left} days",
                                    f"Certificate {c.name} expires on {rfc3339(c.not_after)} and has not "
                                    f"been renewed yet.", {"days_left": days_left,
                                                           "not_after": rfc3339(c.not_after)}))
    failures = [f"{c.name}: {c.error}" for c in result.certificates if c.action == "failed"]
    failures += [f"{t.certificate} -> {t.target.provider} {t.target.name}: {t.error}"
                 for t in result.targets if t.error and t.action != "skipped"]  # skipped: shutdown
    failures += result.errors
    if failures:
        events.append(Event("failure", None, "alicertd: cycle failed",
                            "\n".join(failures), {"failures": failures}))
    return events


def _update_metrics(metrics, result: CycleResult, now: datetime) -> None:
    metrics.last_cycle.set(now)
    for _ in result.errors:  # cycle-wide failures (DNS leftovers, a cycle that could not run)
        metrics.failures.inc(provider="cycle")
    for c in result.certificates:
        if c.not_after is not None:
            metrics.certificate_not_after.set(c.not_after, certificate=c.name)
        if c.action == "issued":
            metrics.issuances.inc(certificate=c.name)
        if c.action == "failed":
            metrics.failures.inc(provider="acme")
    per_cert_ok: dict[str, bool] = {}
    for t in result.targets:
        ok = t.error is None and t.action in ("none", "bound", "verified")
        per_cert_ok[t.certificate] = per_cert_ok.get(t.certificate, True) and ok
        if t.action == "verified" and t.reason != "rollout pending":
            metrics.deployments.inc(provider=t.target.provider)
        if t.error and t.action != "skipped":
            metrics.failures.inc(provider=t.target.provider)
        if t.binding is not None and t.binding.not_after is not None:
            metrics.target_not_after.set(t.binding.not_after, certificate=t.certificate,
                                         provider=t.target.provider, target=t.target.name)
    for c in result.certificates:
        if c.action != "failed" and per_cert_ok.get(c.name, True) and not (c.decision.due and c.action != "issued"):
            metrics.last_success.set(now, certificate=c.name)
