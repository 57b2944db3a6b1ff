"""Configuration that cannot expire certificates: ``renew_before_days`` against the lifetime
the ACME profile implies, and the schedule against the shortest lifetime configured.

A certificate's lifetime is only certain once it is issued. Offline, it is known for Let's
Encrypt's published profiles (source: Let's Encrypt, "Profiles", letsencrypt.org/docs/profiles,
and its announcements of the lifetime changes; see README "Renewal"):

=============  ==========================================================
profile        lifetime
=============  ==========================================================
``classic``    90 days; 64 days from 2027-02-10; 45 days from 2028-02-16
               (also what an order without a profile gets)
``tlsserver``  45 days (since 2026-05-13)
``shortlived`` 160 hours (about 6 days)
=============  ==========================================================

For any other CA or profile nothing is refused offline; at run time a fixed window at or
above the lifetime of the certificate actually issued is ignored (the ARI or lifetime rule
decides, with a warning), so it can never reissue every cycle.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from daemon.config import DIRECTORY_PRESETS, Config

LETS_ENCRYPT = {DIRECTORY_PRESETS["letsencrypt"], DIRECTORY_PRESETS["letsencrypt-staging"]}

#: profile -> [(from when, lifetime)], in date order.
LETS_ENCRYPT_LIFETIMES: dict[str, list[tuple[datetime, timedelta]]] = {
    "classic": [(datetime(2015, 1, 1, tzinfo=UTC), timedelta(days=90)),
                (datetime(2027, 2, 10, tzinfo=UTC), timedelta(days=64)),
                (datetime(2028, 2, 16, tzinfo=UTC), timedelta(days=45))],
    "tlsserver": [(datetime(2026, 5, 13, tzinfo=UTC), timedelta(days=45))],
    "shortlived": [(datetime(2025, 1, 1, tzinfo=UTC), timedelta(hours=160))],
}


def profile_lifetime(directory: str, profile: str | None, at: datetime) -> timedelta | None:
    """The lifetime of a certificate ordered at ``at``, when known offline; None otherwise."""
    if directory not in LETS_ENCRYPT:
        return None
    steps = LETS_ENCRYPT_LIFETIMES.get(profile or "classic")
    if not steps:
        return None
    current = None
    for since, lifetime in steps:
        if at >= since:
            current = lifetime
    return current or steps[0][1]


def upcoming_lifetime(directory: str, profile: str | None, at: datetime) -> tuple[datetime, timedelta] | None:
    """The next announced change of that lifetime after ``at``, if any."""
    if directory not in LETS_ENCRYPT:
        return None
    for since, lifetime in LETS_ENCRYPT_LIFETIMES.get(profile or "classic", []):
        if since > at:
            return since, lifetime
    return None


def _days(d: timedelta) -> str:
    return f"{d.total_seconds() / 86400:g} days" if d >= timedelta(days=1) else f"{d.total_seconds() / 3600:g} hours"


def renewal_errors(config: Config, now: datetime | None = None) -> list[tuple[str, str]]:
    """(key path, message) for every fixed window at or above the lifetime it applies to."""
    now = now or datetime.now(UTC)
    acme = config.acme
    lifetime = profile_lifetime(acme.directory, acme.profile, now)
    if lifetime is None:
        return []
    errors = []
    where = f"the {_days(lifetime)} lifetime of Let's Encrypt's {acme.profile or 'classic'!r} profile"
    if acme.renew_before_days is not None and timedelta(days=acme.renew_before_days) >= lifetime:
        errors.append(("acme.renew_before_days", f"{acme.renew_before_days} days is at or above {where}: "
                                                 f"every cycle would reissue"))
    for i, cert in enumerate(config.certificates):
        if cert.renew_before_days is not None and timedelta(days=cert.renew_before_days) >= lifetime:
            errors.append((f"certificate[{i}].renew_before_days",
                           f"{cert.renew_before_days} days is at or above {where}: every cycle would reissue"))
    return errors


def _max_gap(config: Config, now: datetime) -> timedelta | None:
    sched = config.schedule
    if sched.cron:
        from daemon.scheduler import cron_trigger
        trigger = cron_trigger(sched.cron, timezone_=UTC)
        fires, prev = [], None
        t = now
        for _ in range(64):
            nxt = trigger.get_next_fire_time(prev, t)
            if nxt is None:
                break
            fires.append(nxt)
            prev, t = nxt, nxt + timedelta(seconds=1)
        gaps = [b - a for a, b in zip(fires, fires[1:], strict=False)]
        return max(gaps) if gaps else None
    return timedelta(seconds=sched.interval) if sched.interval else None


def renewal_warnings(config: Config, now: datetime | None = None) -> list[str]:
    """Lines for check-config and the daemon's start: a schedule too sparse for the shortest
    known lifetime (more than a third of it between cycles: ARI answers and drifted targets
    are then seen late; renewals themselves are woken for), and fixed windows that an
    announced lifetime change will turn into a reissue loop."""
    now = now or datetime.now(UTC)
    acme = config.acme
    out = []
    lifetime = profile_lifetime(acme.directory, acme.profile, now)
    gap = _max_gap(config, now)
    if lifetime is not None and gap is not None and gap > lifetime / 3:
        key = "schedule.cron" if config.schedule.cron else "schedule.interval"
        out.append(f"{key}: up to {_days(gap)} between cycles is more than a third of the shortest "
                   f"certificate lifetime configured ({_days(lifetime)}): the CA's renewal information "
                   f"and drifted targets are checked too rarely")
    change = upcoming_lifetime(acme.directory, acme.profile, now)
    if change is not None:
        since, shorter = change
        fixed = [("acme.renew_before_days", acme.renew_before_days)] + [
            (f"certificate[{i}].renew_before_days", c.renew_before_days) for i, c in enumerate(config.certificates)]
        for key, days in fixed:
            if days is not None and timedelta(days=days) >= shorter:
                out.append(f"{key}: {days} days will be at or above the {_days(shorter)} lifetime Let's Encrypt "
                           f"gives {acme.profile or 'classic'!r} certificates from {since.date().isoformat()}")
    return out
