"""What is due: the pure renewal and redeploy decisions (certmagic's ``NeedsRenewal``, in tables).

Nothing here reads a clock, a disk or the network: every input is a frozen value the caller
fills from the state store, ``now`` included, so the same inputs always give the same answer
and the whole policy is testable as a table. The daemon and ``--run-now`` both call
:func:`plan_certificate` / :func:`plan_target`; ``--dry-run`` prints their ``reason``.

Renewal policy, first match wins:

1. no current chain                         -> due, ``no certificate``
2. ``--force NAME``                         -> due, ``forced``
3. the chain has expired                    -> due, ``expired``
4. configured domains differ (as a set)     -> due, ``domains changed``
5. configured key type differs              -> due, ``key type changed``
6. ``renew_before_days`` is set             -> due inside that fixed window
   (an ARI window that has already *ended* still wins: RFC 9773 §4.2, the CA is about to
   revoke, e.g. after a mis-issuance incident; waiting for the fixed window would mean an outage)
7. the CA published an ARI window           -> due from a point chosen uniformly inside it
   (inside the part of it that lies between one third of the lifetime and the last sixth:
   still the CA's window, but never a renewal right after issuance nor one so late that a
   rollout could not finish; a window entirely outside that span is taken as it is)
8. otherwise                                -> due when one third of the lifetime remains, or
   half of it for a certificate of less than 10 days (Let's Encrypt's guidance for
   short-lived certificates: a failed renewal then still leaves days to retry)

:func:`renewal_schedule` turns the same rules into the time the daemon wakes for, and why.

A recorded failure postpones a due renewal until its ``next_attempt`` (see
:func:`backoff_after_failure`), except when forced or expired: a user's explicit request and
an outage both outrank rate-limit politeness.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from daemon.config import CertificateConfig
from providers.base import Binding

# Reasons, exactly as printed by --dry-run and logged; kept as constants so callers and tests
# compare against one spelling.
NO_CERTIFICATE = "no certificate"
FORCED = "forced"
DOMAINS_CHANGED = "domains changed"
KEY_TYPE_CHANGED = "key type changed"
ARI_WINDOW = "ARI window"
EXPIRED = "expired"
NOT_DUE = "not due"

NEVER_DEPLOYED = "never deployed"
SERVES_OLDER = "serves an older certificate"
DRIFT = "changed by someone else (drift)"
ROLLOUT_PENDING = "rollout pending"
ROLLOUT_FAILED = "rollout failed"
STATE_UNKNOWN = "state unknown"
UP_TO_DATE = "up to date"

#: First retry after a failure; each further failure doubles it, up to the caller's cap.
FIRST_BACKOFF = timedelta(minutes=10)


def inside_window_reason(days_left: int) -> str:
    return f"inside renewal window ({days_left} days left)"


def backing_off_reason(until: datetime) -> str:
    return f"backing off until {format_time(until)}"


def format_time(t: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, to the second: how every time is shown to users."""
    return t.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- inputs / outputs


@dataclass(frozen=True)
class IssuedState:
    """The current chain of one certificate, as the state store recorded it.

    ``domains`` are the SANs as issued; ``ari_window`` is the CA's suggested renewal window
    (RFC 9773 ``suggestedWindow``: start, end) when known, ``ari_retry_after`` when the CA
    wants to be asked again (see :func:`ari_refresh_due`).
    """

    serial: str
    not_before: datetime
    not_after: datetime
    domains: tuple[str, ...]
    key_type: str
    ari_window: tuple[datetime, datetime] | None = None
    ari_retry_after: datetime | None = None


@dataclass(frozen=True)
class FailureState:
    """Consecutive failures of one certificate and when it may be tried again."""

    failures: int
    last_failure: datetime
    next_attempt: datetime


@dataclass(frozen=True)
class CertDecision:
    """Whether certificate ``name`` should be (re)issued now, and why.

    ``not_before_attempt`` is when the next attempt makes sense when it is not due now: the
    start of the renewal window (``not due``) or the end of a backoff (``backing off``); None
    when due now. The scheduler uses it to wake up early for a backoff retry.
    """

    name: str
    due: bool
    reason: str
    not_before_attempt: datetime | None = None
    backing_off: bool = False  # not due only because a recorded failure's backoff runs


@dataclass(frozen=True)
class TargetDecision:
    """Whether one deploy target needs ``bind`` with the current certificate, and why."""

    due: bool
    reason: str


# --------------------------------------------------------------------------- renewal


def _norm_domains(domains: tuple[str, ...] | list[str]) -> frozenset[str]:
    return frozenset(d.strip().lower().rstrip(".") for d in domains)


def _days_left(not_after: datetime, now: datetime) -> int:
    return max(0, (not_after - now) // timedelta(days=1))


def ari_rng(name: str, serial: str, window: tuple[datetime, datetime]) -> random.Random:
    """A generator seeded by certificate, serial and window.

    RFC 9773 §4.2 asks for a uniformly random instant inside the window. Re-rolling it every
    cycle would make an early renewal ever more likely the more often we check (a cycle every
    12 h over a 2-day window is four draws). Seeding from what identifies the window gives each
    certificate its own instant that stays put across cycles and restarts, and moves only when
    the CA moves the window or the certificate is replaced.
    """
    start, end = window
    seed = "\n".join((name, serial.lower(), format_time(start), format_time(end)))
    return random.Random(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))


def ari_pick(window: tuple[datetime, datetime], rng: random.Random) -> datetime:
    """The renewal instant inside ``window``: ``start + u * (end - start)``, ``u`` from ``rng``."""
    start, end = window
    if end <= start:
        return start
    return start + (end - start) * rng.random()


def ari_refresh_due(issued: IssuedState | None, now: datetime) -> bool:
    """Whether the caller should ask the CA's renewalInfo endpoint again (RFC 9773 §4.3):
    when nothing is known yet, or once the ``Retry-After`` the CA gave has passed."""
    if issued is None:
        return False
    if issued.ari_window is None or issued.ari_retry_after is None:
        return True
    return now >= issued.ari_retry_after


SHORT_LIFETIME = timedelta(days=10)
ISSUANCE_MARGIN = timedelta(minutes=10)


def lifetime_renewal_time(not_before: datetime, not_after: datetime) -> datetime:
    """One third of the lifetime remaining; half of it under 10 days (rule 8)."""
    lifetime = not_after - not_before
    return not_before + (lifetime / 2 if lifetime < SHORT_LIFETIME else lifetime * 2 / 3)


def usable_ari_window(issued: IssuedState) -> tuple[datetime, datetime] | None:
    """The CA's window narrowed to [not_before + lifetime/3, not_after - lifetime/6] when the
    two overlap (rule 7); the CA's own window otherwise (e.g. "renew now": in the past)."""
    if issued.ari_window is None:
        return None
    start, end = issued.ari_window
    lifetime = issued.not_after - issued.not_before
    # Leave the order itself time to finish inside the window (5 % of it, at most 10 min).
    finish = min((end - start) / 20, ISSUANCE_MARGIN) if end > start else timedelta(0)
    lo, hi = max(start, issued.not_before + lifetime / 3), min(end - finish, issued.not_after - lifetime / 6)
    return (lo, hi) if lo < hi else (start, end)


def renewal_time(name: str, issued: IssuedState, renew_before_days: int | None,
                 rng: random.Random | None = None) -> tuple[datetime, str]:
    """When the renewal window of ``issued`` opens, and which rule set it (for the reason)."""
    if renew_before_days is not None:
        fixed = issued.not_after - timedelta(days=renew_before_days)
        if issued.ari_window is not None and issued.ari_window[1] < fixed:
            return issued.ari_window[1], ARI_WINDOW
        return fixed, "fixed"
    window = usable_ari_window(issued)
    if window is not None:
        pick_rng = rng if rng is not None else ari_rng(name, issued.serial, issued.ari_window)
        return ari_pick(window, pick_rng), ARI_WINDOW
    return lifetime_renewal_time(issued.not_before, issued.not_after), "lifetime"


@dataclass(frozen=True)
class RenewalSchedule:
    """When the daemon should next act on a certificate, and why (``status`` shows both).
    ``latest`` is the end of the window the time was chosen in: a wake-up may be delayed
    (jitter, a busy scheduler) but never past it."""

    at: datetime
    why: str
    latest: datetime


RULE_WHY = {ARI_WINDOW: "inside the CA's ARI window (RFC 9773)", "fixed": "renew_before_days",
            "lifetime": "lifetime rule"}


def renewal_schedule(name: str, issued: IssuedState | None, renew_before_days: int | None, *,
                     failure: FailureState | None = None, now: datetime) -> RenewalSchedule:
    """The next time this certificate needs the daemon, independent of ``interval``/``cron``:
    now when there is nothing yet; a failure's ``next_attempt`` while backing off; else the
    renewal time of :func:`renewal_time`."""
    if failure is not None and now < failure.next_attempt:
        return RenewalSchedule(failure.next_attempt, f"retry after failure {failure.failures}",
                               failure.next_attempt)
    if issued is None:
        return RenewalSchedule(now, NO_CERTIFICATE, now)
    at, rule = renewal_time(name, issued, renew_before_days)
    window = usable_ari_window(issued) if rule == ARI_WINDOW else None
    if window is not None:
        latest = max(at, window[1])
    else:
        # The fixed and lifetime rules name an instant; allow a twelfth of the lifetime after it.
        latest = min(issued.not_after, at + (issued.not_after - issued.not_before) / 12)
    return RenewalSchedule(at, RULE_WHY.get(rule, rule), latest)


def wake_time(schedule: RenewalSchedule, jitter_seconds: float, rng: random.Random) -> datetime:
    """``schedule.at`` plus up to ``jitter_seconds`` of random delay, never past ``latest``:
    jitter spreads a fleet's load, it must never push a renewal out of its window."""
    # Half the room at most: the renewal itself still has to finish before ``latest``.
    room = max(0.0, (schedule.latest - schedule.at).total_seconds()) / 2
    return schedule.at + timedelta(seconds=rng.uniform(0.0, min(max(0.0, jitter_seconds), room)))


def plan_certificate(
    cert: CertificateConfig,
    issued: IssuedState | None,
    *,
    renew_before_days: int | None,
    force: bool,
    now: datetime,
    failure: FailureState | None = None,
    rng: random.Random | None = None,
) -> CertDecision:
    """Decide whether ``cert`` is due for (re)issuance at ``now``; see the module docstring.

    ``renew_before_days`` is the effective fixed window (the certificate's own override, else
    ``[acme]``'s, else None). ``rng`` pins the ARI pick (tests); by default the pick comes from
    :func:`ari_rng` so that repeated cycles agree. All datetimes must be timezone-aware.
    """
    name = cert.name

    def due(reason: str) -> CertDecision:
        return CertDecision(name, True, reason, None)

    def due_unless_backing_off(reason: str) -> CertDecision:
        if failure is not None and now < failure.next_attempt:
            return CertDecision(name, False, backing_off_reason(failure.next_attempt),
                                failure.next_attempt, backing_off=True)
        return due(reason)

    if force:
        return due(FORCED)
    if issued is None:
        return due_unless_backing_off(NO_CERTIFICATE)
    if now >= issued.not_after:
        return due(EXPIRED)
    if _norm_domains(cert.domains) != _norm_domains(issued.domains):
        return due_unless_backing_off(DOMAINS_CHANGED)
    if cert.key_type != issued.key_type:
        return due_unless_backing_off(KEY_TYPE_CHANGED)

    at, rule = renewal_time(name, issued, renew_before_days, rng)
    if now < at:
        return CertDecision(name, False, NOT_DUE, at)
    if rule == ARI_WINDOW:
        return due_unless_backing_off(ARI_WINDOW)
    return due_unless_backing_off(inside_window_reason(_days_left(issued.not_after, now)))


def backoff_after_failure(prev: FailureState | None, now: datetime,
                          cap_seconds: float, retry_after: float | None = None) -> FailureState:
    """The failure record after one more failure at ``now``.

    Retries come 10 min, 20, 40, … after each failure, never later than ``cap_seconds`` (the
    normal cycle interval: past that the regular cycle retries anyway), and never before the
    ``retry_after`` seconds the CA asked for (``rateLimited``). Front-loaded because
    most failures are transient (a DNS replica, a CA hiccup), and bounded because a CA's
    failed-validation limits punish a client that hammers it.
    """
    failures = (prev.failures if prev is not None else 0) + 1
    delay = FIRST_BACKOFF.total_seconds() * 2 ** min(failures - 1, 32)
    delay = max(0.0, min(delay, cap_seconds))
    if retry_after is not None:
        # The CA said when (rateLimited's Retry-After): earlier is refused anyway, and counts.
        delay = max(delay, float(retry_after))
    return FailureState(failures=failures, last_failure=now,
                        next_attempt=now + timedelta(seconds=delay))


# --------------------------------------------------------------------------- deploy targets


def _identify(binding: Binding, serial: str, fingerprint: str,
              last_fingerprint: str | None, last_serial: str | None) -> str:
    """Which certificate the binding serves: current | previous | other | none | unknown.

    The fingerprint is preferred (it names the exact leaf); the serial is the fallback for APIs
    that only report it.
    """
    if binding.state == "none":
        return "none"
    if binding.state == "unknown":
        return "unknown"
    if binding.fingerprint is not None:
        fp = binding.fingerprint.lower()
        if fp == fingerprint.lower():
            return "current"
        if last_fingerprint is not None and fp == last_fingerprint.lower():
            return "previous"
        return "other"
    if binding.serial is not None:
        s = binding.serial.lower()
        if s == serial.lower():
            return "current"
        if last_serial is not None and s == last_serial.lower():
            return "previous"
        return "other"
    return "unknown"


def plan_target(
    binding: Binding,
    *,
    serial: str,
    fingerprint: str,
    last_deployed_fingerprint: str | None,
    last_deployed_serial: str | None = None,
) -> TargetDecision:
    """Decide whether a target must be (re)bound to the current bundle (``serial``/``fingerprint``).

    ``last_deployed_*`` identify what we last recorded as deployed on this target (None when we
    never deployed there). Drift means the target serves something we did not put there after we
    had deployed: someone replaced or removed our certificate. A target that never had our
    certificate is ``never deployed`` even when it serves someone else's.

    =========================================  =====  ===============================
    what the binding serves                     due    reason
    =========================================  =====  ===============================
    the current cert, settled (``ok``)          no     up to date
    the current cert, rolling out               no     rollout pending
    the current cert, API reports ``error``     yes    rollout failed
    what we deployed last (not current)         yes    serves an older certificate
    nothing / something else, never deployed    yes    never deployed
    nothing / something else, we deployed       yes    changed by someone else (drift)
    cannot tell (unreadable, no serial/fp)      yes    state unknown
    =========================================  =====  ===============================

    "state unknown" is due because ``bind`` is idempotent: rebinding the same certificate costs
    one rollout, while trusting an unreadable target could leave it expired.
    """
    what = _identify(binding, serial, fingerprint, last_deployed_fingerprint, last_deployed_serial)
    if what == "current":
        if binding.state == "pending":
            return TargetDecision(False, ROLLOUT_PENDING)
        if binding.state == "error":
            return TargetDecision(True, ROLLOUT_FAILED)
        return TargetDecision(False, UP_TO_DATE)
    if what == "previous":
        return TargetDecision(True, SERVES_OLDER)
    if what in ("none", "other"):
        ours_before = last_deployed_fingerprint is not None or last_deployed_serial is not None
        return TargetDecision(True, DRIFT if ours_before else NEVER_DEPLOYED)
    return TargetDecision(True, STATE_UNKNOWN)
