"""The scheduler wrapper against real time, with short intervals and bounded waits."""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.config import ScheduleConfig
from daemon.scheduler import (
    DaemonScheduler,
    cron_trigger,
    install_signal_handlers,
    make_trigger,
    validate_cron,
    wait_until,
)

log = logging.getLogger("test.scheduler")


class Recorder:
    def __init__(self, duration: float = 0.0):
        self.duration = duration
        self.calls: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.calls.append(time.monotonic())
        try:
            if self.duration:
                threading.Event().wait(self.duration)
        finally:
            with self._lock:
                self.in_flight -= 1


@pytest.fixture
def make():
    made: list[DaemonScheduler] = []

    def _make(rec, schedule):
        s = DaemonScheduler(rec, schedule, log=log)
        made.append(s)
        return s

    yield _make
    for s in made:
        s.stop(drain_timeout=5)


def test_runs_at_start_without_waiting_an_interval(make):
    rec = Recorder()
    s = make(rec, ScheduleConfig(interval=3600, jitter=0))
    s.start()
    assert wait_until(lambda: len(rec.calls) == 1, 5)
    assert s.next_run_time() > datetime.now(UTC) + timedelta(minutes=59)


def test_runs_again_on_a_short_interval(make):
    rec = Recorder()
    s = make(rec, ScheduleConfig(interval=0.2, jitter=0))
    s.start()
    assert wait_until(lambda: len(rec.calls) >= 3, 5)


def test_never_overlaps(make):
    rec = Recorder(duration=0.5)
    s = make(rec, ScheduleConfig(interval=0.1, jitter=0))
    s.start()
    s.request_early_run(datetime.now(UTC) + timedelta(seconds=0.2))
    assert wait_until(lambda: len(rec.calls) >= 3, 10)
    assert rec.max_in_flight == 1


def test_a_failing_cycle_does_not_stop_the_next(make, caplog):
    calls = []

    def boom():
        calls.append(1)
        raise RuntimeError("nope")

    s = make(boom, ScheduleConfig(interval=0.2, jitter=0))
    with caplog.at_level(logging.ERROR, logger="test.scheduler"):
        s.start()
        assert wait_until(lambda: len(calls) >= 2, 5)
    assert "cycle failed" in caplog.text


def test_stop_returns_promptly(make):
    rec = Recorder()
    s = make(rec, ScheduleConfig(interval=3600, jitter=0))
    stop = threading.Event()
    beats = []
    t = threading.Thread(target=s.run_forever, args=(stop,),
                         kwargs={"heartbeat": lambda: beats.append(1), "heartbeat_interval": 0.05})
    t.start()
    assert wait_until(lambda: len(rec.calls) == 1 and len(beats) >= 2, 5)
    t0 = time.monotonic()
    stop.set()
    t.join(5)
    assert not t.is_alive()
    assert time.monotonic() - t0 < 1.0


def test_stop_waits_for_a_running_cycle_within_the_drain_budget(make):
    rec = Recorder(duration=0.4)
    s = make(rec, ScheduleConfig(interval=3600, jitter=0))
    s.start()
    assert wait_until(lambda: s.running, 5)
    assert s.stop(drain_timeout=0.05) is False  # still running: reported, not waited for
    assert s.stop(drain_timeout=5) is True


def test_early_run(make):
    rec = Recorder()
    s = make(rec, ScheduleConfig(interval=3600, jitter=0))
    s.start()
    assert wait_until(lambda: len(rec.calls) == 1, 5)
    at = datetime.now(UTC) + timedelta(seconds=0.3)
    assert s.request_early_run(at) is True
    # a later request does not replace the earlier one; one past the next regular run is dropped
    assert s.request_early_run(at + timedelta(seconds=10)) is False
    assert s.request_early_run(at + timedelta(hours=2)) is False
    assert wait_until(lambda: len(rec.calls) == 2, 5)
    assert rec.calls[1] - rec.calls[0] >= 0.2


def test_reschedule_runs_now_with_the_new_trigger(make):
    rec = Recorder()
    s = make(rec, ScheduleConfig(interval=3600, jitter=0))
    s.start()
    assert wait_until(lambda: len(rec.calls) == 1, 5)
    s.reschedule(ScheduleConfig(interval=None, cron="17 3 * * *", jitter=0))
    assert wait_until(lambda: len(rec.calls) == 2, 5)
    nxt = s.next_run_time()
    assert (nxt.minute, nxt.hour) == (17, 3)


@pytest.mark.parametrize("expr", ["17 3 * * *", "*/15 * * * *", "0 4 * * 0", "0 4 * * 1-5", "0 0 1 * *",
                                  "@daily", "0 6,18 * * sun", "30 2 * * 7"])
def test_validate_cron_accepts(expr):
    assert validate_cron(expr) is None


@pytest.mark.parametrize("expr, fragment", [
    ("", "empty"),
    ("17 3 * *", "5 fields"),
    ("61 3 * * *", "invalid cron"),
    ("0 25 * * *", "invalid cron"),
    ("0 0 * * 8", "day of week"),
    ("0 0 1 * 1", "ambiguous"),
    ("0 0 * * */0", "step"),
])
def test_validate_cron_rejects(expr, fragment):
    msg = validate_cron(expr)
    assert msg is not None and fragment in msg


@pytest.mark.parametrize("dow, expected_weekday", [("0", 6), ("7", 6), ("1", 0), ("sun", 6), ("6", 5)])
def test_cron_weekdays_follow_crontab_not_apscheduler3(dow, expected_weekday):
    """crontab: 0 and 7 are Sunday; APScheduler 3 would read 0 as Monday."""
    trig = cron_trigger(f"0 4 * * {dow}", timezone_=UTC)
    start = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
    fire = trig.get_next_fire_time(None, start)
    assert fire.weekday() == expected_weekday


def test_cron_weekday_step_is_crontab_semantics():
    trig = cron_trigger("0 4 * * */2", timezone_=UTC)  # sun, tue, thu, sat
    t = datetime(2026, 11, 23, tzinfo=UTC)
    days = set()
    for _ in range(8):
        t = trig.get_next_fire_time(t, t + timedelta(seconds=1))
        days.add(t.weekday())
    assert days == {6, 1, 3, 5}


def test_make_trigger_interval_and_jitter():
    trig = make_trigger(ScheduleConfig(interval=43200, jitter=600))
    assert trig.interval == timedelta(hours=12) and trig.jitter == 600
    with pytest.raises(ValueError):
        make_trigger(ScheduleConfig(interval=None, cron=None))


def test_signal_handlers():
    # What was there before, not Python's defaults: a shell starts background jobs (a CI
    # runner's `make test &`, nohup) with SIGINT ignored, and Python then leaves it ignored.
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    events = []
    restore = install_signal_handlers(lambda: events.append("stop"), lambda: events.append("reload"))
    try:
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            n = len(events)
            os.kill(os.getpid(), sig)
            assert wait_until(lambda n=n: len(events) > n, 2)
    finally:
        restore()
    assert events == ["reload", "stop", "stop"]
    assert {sig: signal.getsignal(sig) for sig in before} == before


# A daemon's main thread: run_forever with no heartbeat, and threads that keep creating threads
# (as the metrics server does for every request it answers). Each SIGHUP handled is reported
# through a pipe by another thread: a handler that wrote it itself would get the next signal
# before returning, and nest until a RecursionError.
_SIGNALLED_DAEMON = r"""
import logging, os, sys, threading
from daemon.config import ScheduleConfig
from daemon.scheduler import DaemonScheduler, install_signal_handlers

out = int(sys.argv[1])
stop = threading.Event()
handled = []
install_signal_handlers(stop.set, lambda: handled.append(1))

def report():
    seen = 0
    while not stop.wait(0.001):
        now = len(handled)
        if now > seen:
            os.write(out, b"h" * (now - seen))
            seen = now

def churn():
    while not stop.is_set():
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()

for _ in range(2):
    threading.Thread(target=churn, daemon=True).start()
threading.Thread(target=report, daemon=True).start()
scheduler = DaemonScheduler(lambda: None, ScheduleConfig(interval=3600, jitter=0), log=logging.getLogger("x"))
os.write(out, b"r")
sys.exit(0 if scheduler.run_forever(stop) else 1)
"""


def test_every_signal_reaches_its_handler_while_the_main_thread_waits():
    """The kernel may give a signal to a thread being created; Python then only flags the
    handler for the main thread. While run_forever waited without a timeout, one of these
    100 SIGHUPs never ran its handler in each of 20 runs (in the daemon: a reload that never
    happens, a SIGTERM that does not stop it; tests/e2e/test_signals.py lost a SIGHUP so)."""
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", _SIGNALLED_DAEMON, str(w)], pass_fds=(w,),
                            cwd=Path(__file__).resolve().parents[2])
    os.close(w)
    try:
        assert select.select([r], [], [], 30)[0] and os.read(r, 1) == b"r", "the child did not start"
        for i in range(100):
            os.kill(proc.pid, signal.SIGHUP)
            assert select.select([r], [], [], 3)[0], f"SIGHUP {i + 1} was not handled within 3 s"
            assert os.read(r, 1) == b"h"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(r)
