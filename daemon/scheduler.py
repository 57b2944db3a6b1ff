"""When cycles run: a thin wrapper around APScheduler 3; what a cycle does is not its business.

The daemon and ``--run-now`` call the same cycle function; this module only decides *when*.
One job, ``cycle``: first run at start, then every ``interval`` (or on a ``cron`` schedule),
each with up to ``jitter`` of random delay so that a fleet of hosts does not hit the CA at the
same second. Never two cycles at once: ``max_instances=1`` for the regular job, and a
single-worker executor so that an early retry (:meth:`DaemonScheduler.request_early_run`)
queues behind a running cycle instead of racing it. After a suspend or a long stall, missed
runs are coalesced into one run (``coalesce=True``, no misfire limit).

Why ``BackgroundScheduler`` rather than ``BlockingScheduler``: the main thread must stay free —
Python runs signal handlers only there, and :meth:`DaemonScheduler.run_forever` pings the
systemd watchdog from it, so a stuck scheduler thread shows up as a missed watchdog instead of
a daemon that looks alive and does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from daemon.config import ScheduleConfig

CYCLE_JOB = "cycle"
EARLY_JOB = "early-run"
# The longest the main thread waits without looking at signals. The kernel may hand SIGTERM or
# SIGHUP to any thread, e.g. one being created (the metrics server starts one per request): the
# C handler then only flags the Python handler, which runs once the main thread executes
# bytecode. A main thread blocked in a wait without a timeout would leave it pending until the
# next signal: beside one thread that kept creating threads, 12 SIGHUPs of 500 never ran theirs.
SIGNAL_CHECK_SECONDS = 0.25

_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


# --------------------------------------------------------------------------- cron


def _crontab_dow(field: str) -> str:
    """Translate a crontab day-of-week field into APScheduler 3 weekday names.

    APScheduler 3 numbers weekdays from Monday = 0, crontab from Sunday = 0 (and 7): passing
    ``0`` through would move a Sunday job to Monday. Expanding to names sidesteps the mismatch.
    Raises ValueError on a malformed field.
    """
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()

    def day(tok: str) -> int:
        tok = tok.lower()
        if tok in _DOW_NAMES:
            return _DOW_NAMES.index(tok)
        if not tok.isdigit() or not 0 <= int(tok) <= 7:
            raise ValueError(f"bad day of week {tok!r} (0-7 or sun-sat)")
        return int(tok) % 7 if tok != "7" else 7

    for part in field.split(","):
        base, _, step_s = part.partition("/")
        if step_s and (not step_s.isdigit() or int(step_s) == 0):
            raise ValueError(f"bad step {step_s!r} in day of week")
        step = int(step_s) if step_s else 1
        if base == "*":
            lo, hi = 0, 6
        elif "-" in base:
            a, _, b = base.partition("-")
            lo, hi = day(a), day(b)
            if lo == 7:
                lo = 0
            if hi < lo:
                raise ValueError(f"bad day-of-week range {base!r}")
        else:
            lo = day(base)
            hi = 6 if step_s else lo
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DOW_NAMES[d] for d in sorted(days))


def cron_trigger(expr: str, jitter: float | None = None, timezone_=None) -> CronTrigger:
    """A CronTrigger for a standard 5-field crontab line (or ``@daily``-style macro).

    Evaluated in the host's local time zone, as cron(8) does, unless ``timezone_`` is given.
    Raises ValueError with a one-line message on a bad expression.
    """
    expr = _MACROS.get(expr.strip().lower(), expr)
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, dom, month, dow = fields
    if dom not in ("*", "?") and dow not in ("*", "?"):
        raise ValueError("restricting both day of month and day of week is ambiguous "
                         "(cron runs when either matches); restrict only one")
    kwargs = {"timezone": timezone_} if timezone_ is not None else {}
    return CronTrigger(minute=minute, hour=hour, day=dom, month=month,
                       day_of_week=_crontab_dow(dow), jitter=int(jitter) if jitter else None, **kwargs)


def validate_cron(expr: str) -> str | None:
    """None when ``expr`` is a usable crontab line, else a one-line error for the config loader."""
    if not isinstance(expr, str) or not expr.strip():
        return "empty cron expression"
    try:
        cron_trigger(expr, timezone_=UTC)
    except (ValueError, TypeError) as exc:
        return f"invalid cron expression {expr!r}: {exc}"
    return None


def make_trigger(schedule: ScheduleConfig) -> BaseTrigger:
    """The regular cycle's trigger: cron when set, else the interval."""
    jitter = schedule.jitter or None
    if schedule.cron:
        return cron_trigger(schedule.cron, jitter)
    if not schedule.interval or schedule.interval <= 0:
        raise ValueError("schedule needs a positive interval or a cron expression")
    return IntervalTrigger(seconds=schedule.interval, jitter=jitter)


def describe(schedule: ScheduleConfig) -> str:
    what = f"cron {schedule.cron!r}" if schedule.cron else f"every {schedule.interval:g}s"
    return f"{what}, jitter {schedule.jitter:g}s" if schedule.jitter else what


# --------------------------------------------------------------------------- scheduler


class DaemonScheduler:
    """Runs ``run_cycle`` on ``schedule`` in one background thread, never two at once.

    ``run_cycle``'s return value is ignored and its exceptions are logged, never propagated: a
    failed cycle must not stop the next one. ``now`` is injectable for tests.
    """

    def __init__(self, run_cycle: Callable[[], object], schedule: ScheduleConfig, *,
                 log: logging.Logger | logging.LoggerAdapter,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._run_cycle = run_cycle
        self._schedule = schedule
        self._log = log
        self._now = now
        self._lock = threading.Lock()  # held while a cycle runs
        self._idle = threading.Event()
        self._idle.set()
        self.cycles_started = 0
        self._sched = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._started = False

    # ----------------------------------------------------------------- running

    def _guarded(self, origin: str) -> None:
        with self._lock:
            self._idle.clear()
            self.cycles_started += 1
            try:
                self._log.debug("cycle start (%s)", origin)
                self._run_cycle()
            except Exception:
                self._log.exception("cycle failed with an unexpected error")
            finally:
                self._idle.set()

    def start(self) -> None:
        """Schedule the regular job with its first run now and start the background thread."""
        if self._started:
            return
        self._sched.add_job(self._guarded, make_trigger(self._schedule), args=("scheduled",),
                            id=CYCLE_JOB, name="alicertd cycle", next_run_time=self._now())
        self._sched.start()
        self._started = True
        self._log.info("scheduler started: %s", describe(self._schedule))

    def run_forever(self, stop_event: threading.Event, *,
                    heartbeat: Callable[[], object] | None = None,
                    heartbeat_interval: float | None = None,
                    drain_timeout: float = 10.0,
                    clock: Callable[[], float] = time.monotonic) -> bool:
        """Start (if needed) and block until ``stop_event`` is set, then shut down.

        Meant for the main thread, whose waits last at most ``SIGNAL_CHECK_SECONDS`` so that a
        signal the kernel gave another thread is handled within that time. ``heartbeat`` (e.g.
        the systemd watchdog ping) is called every ``heartbeat_interval`` seconds from this
        thread. On stop, waits at most ``drain_timeout`` seconds for a running cycle to finish
        (the cycle itself must watch its own stop flag); returns True when no cycle was left
        running.
        """
        self.start()
        every = heartbeat_interval if heartbeat is not None and heartbeat_interval else None
        next_beat = clock() + every if every else None
        while True:
            timeout = SIGNAL_CHECK_SECONDS
            if next_beat is not None:
                timeout = min(timeout, max(0.0, next_beat - clock()))
            if stop_event.wait(timeout):
                break
            if next_beat is not None and clock() >= next_beat:
                next_beat = clock() + every
                try:
                    heartbeat()
                except Exception:  # a heartbeat must never take the daemon down
                    self._log.exception("heartbeat failed")
        return self.stop(drain_timeout=drain_timeout)

    def stop(self, drain_timeout: float = 10.0) -> bool:
        """Stop scheduling; wait up to ``drain_timeout`` s for a running cycle. Idempotent."""
        if self._started:
            self._sched.shutdown(wait=False)
            self._started = False
        drained = self._idle.wait(max(0.0, drain_timeout))
        if not drained:
            self._log.warning("a cycle is still running after %gs; exiting anyway", drain_timeout)
        return drained

    @property
    def running(self) -> bool:
        """True while a cycle is executing."""
        return not self._idle.is_set()

    # ----------------------------------------------------------------- changes

    def next_run_time(self) -> datetime | None:
        job = self._sched.get_job(CYCLE_JOB)
        return job.next_run_time if job is not None else None

    def request_early_run(self, at: datetime) -> bool:
        """Run one extra cycle at ``at`` (a failed certificate's backoff retry).

        Only one early run is kept: an earlier request replaces a later one, and a request that
        falls after the next regular run is dropped (that run covers it). Returns True when
        scheduled. A cycle running at ``at`` delays the early run; it never overlaps.
        """
        if not self._started:
            return False
        if at.tzinfo is None:
            raise ValueError("request_early_run needs a timezone-aware datetime")
        nxt = self.next_run_time()
        if nxt is not None and at >= nxt:
            return False
        existing = self._sched.get_job(EARLY_JOB)
        if existing is not None and existing.next_run_time is not None and existing.next_run_time <= at:
            return False
        self._sched.add_job(self._guarded, "date", run_date=at, args=("early retry",),
                            id=EARLY_JOB, name="alicertd early retry", replace_existing=True)
        self._log.info("extra cycle scheduled at %s", at.astimezone(UTC).isoformat())
        return True

    def reschedule(self, schedule: ScheduleConfig, *, run_now: bool = True) -> None:
        """Apply a reloaded ``[schedule]`` (SIGHUP). With ``run_now`` the next cycle starts at
        once, so that a reload that added a certificate acts on it without waiting a full
        interval."""
        trigger = make_trigger(schedule)  # raises before anything changes
        self._schedule = schedule
        if not self._started:
            return
        self._sched.reschedule_job(CYCLE_JOB, trigger=trigger)
        if run_now:
            self._sched.modify_job(CYCLE_JOB, next_run_time=self._now())
        self._log.info("schedule reloaded: %s", describe(schedule))

    def cancel_early_run(self) -> None:
        with contextlib.suppress(JobLookupError):
            self._sched.remove_job(EARLY_JOB)


# --------------------------------------------------------------------------- signals


def install_signal_handlers(on_stop: Callable[[], object],
                            on_reload: Callable[[], object]) -> Callable[[], None]:
    """SIGTERM/SIGINT -> ``on_stop``, SIGHUP -> ``on_reload``; returns a function restoring the
    previous handlers. Must be called from the main thread (Python's rule). The callbacks run
    in the main thread between bytecodes: they should only set events, not do work."""
    previous: dict[int, object] = {}

    def stop_handler(signum, frame):  # noqa: ARG001 - signal signature
        on_stop()

    def reload_handler(signum, frame):  # noqa: ARG001
        on_reload()

    for sig, handler in ((signal.SIGTERM, stop_handler), (signal.SIGINT, stop_handler),
                         (signal.SIGHUP, reload_handler)):
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def wait_until(predicate: Callable[[], bool], timeout: float, *, step: float = 0.02,
               clock: Callable[[], float] = time.monotonic) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; returns its last value.
    For tests and shutdown paths: a bounded wait, never an open-ended sleep."""
    deadline = clock() + timeout
    ev = threading.Event()
    while True:
        if predicate():
            return True
        remaining = deadline - clock()
        if remaining <= 0:
            return predicate()
        ev.wait(min(step, remaining))


def utc_in(seconds: float, now: datetime | None = None) -> datetime:
    """``now`` (default: the current UTC time) plus ``seconds``."""
    return (now or datetime.now(UTC)) + timedelta(seconds=seconds)
