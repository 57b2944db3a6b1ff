"""What a cycle produced: per certificate, per target, and cycle-wide errors.

Shared by the cycle's steps (``daemon/cycle_*.py``), the one-shot runner, the daemon and
reporting, so none of them has to import the cycle itself to read a result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from daemon import planner
from providers.base import Binding, Target


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


NOT_VERIFIED = "not yet verified"


def target_key(target: Target) -> str:
    return f"{target.provider}:{target.name}"


@dataclass
class CertOutcome:
    name: str
    decision: planner.CertDecision
    action: str = "none"  # none | issued | failed | skipped
    error: str | None = None
    serial: str | None = None
    not_after: datetime | None = None
    renewed: bool = False  # issued while an older chain existed
    ca_error: str | None = None  # the CA's renewal information could not be read (advisory)
    schedule: Any = None  # planner.RenewalSchedule: when this certificate renews next, and why
    retry_after: float | None = None  # seconds the CA asked us to wait (rateLimited)


@dataclass
class TargetOutcome:
    certificate: str
    target: Target
    reason: str
    action: str = "none"  # none | bound | verified | failed | skipped
    error: str | None = None
    binding: Binding | None = None


@dataclass
class CycleResult:
    started: datetime
    finished: datetime | None = None
    certificates: list[CertOutcome] = field(default_factory=list)
    targets: list[TargetOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # cycle-wide (e.g. DNS leftovers)
    notes: list[str] = field(default_factory=list)  # informational (CAS uploads/deletions)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """Contract: every certificate valid and not due, deployed to every target."""
        if self.errors:
            return False
        # A certificate in its failure backoff is due in all but name: a missing one (or one
        # inside its renewal window) is not "valid", whether or not it has targets to fail.
        certs_ok = all(c.action != "failed" and (not c.decision.due or c.action == "issued")
                       and not c.decision.backing_off for c in self.certificates)
        targets_ok = all(t.action in ("none", "bound", "verified") and t.error is None
                         for t in self.targets)
        return certs_ok and targets_ok

    @property
    def plan_ok(self) -> bool:
        """Contract for ``--dry-run``: the plan could be made, whether or not work is due.
        False when a certificate's state, a target's binding or the CA could not be read."""
        return (not self.errors and all(c.action != "failed" and c.ca_error is None for c in self.certificates)
                and all(t.action != "failed" for t in self.targets))
