"""``alicertd`` without ``--run-now``: the long-lived daemon.

The scheduler calls the same :class:`~daemon.cycle.Cycle` as ``--run-now``; this module only
adds what a service needs: the state lock held while a cycle runs (so a ``--run-now`` beside us
waits instead of racing), SIGTERM/SIGINT (stop taking work, let in-flight steps finish or
abandon them with their DNS records removed, exit 0 within 10 s), SIGHUP (reload; a bad file
keeps the old config), sd_notify READY/WATCHDOG/STOPPING, metrics, and a wake-up at each
certificate's own next renewal time (its ARI pick, its lifetime rule, or a failure's backoff),
whatever ``interval``/``cron`` say: those stay the cadence for checking targets and ARI, and a
6-day certificate must not wait for a 3-day interval.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from daemon import planner
from daemon.config import Config
from daemon.cycle import Cycle, parse_time
from daemon.state import StateLocked, StateStore

log = logging.getLogger("alicertd")

DRAIN_SECONDS = 8.0
LOCKED_RETRY_SECONDS = 60.0  # within systemd's TimeoutStopSec and the 10 s promise
MIN_WAKE_SECONDS = 1.0  # never wake sooner than this after a cycle (no busy loop on a clock skew)


class Service:
    def __init__(self, config: Config, config_loader: Callable[[], Config]):
        self.config = config
        self.config_loader = config_loader
        self.stop_event = threading.Event()
        self.metrics = None
        self.metrics_server = None
        self.scheduler = None
        self.last_result_ok: bool | None = None  # for /healthz: None until the first cycle

    def run_cycle(self) -> None:
        config = self.config  # a reload swaps the attribute; this cycle keeps its config
        store = StateStore(config.state_dir)
        try:
            with store.lock(config.runtime.lock_timeout):
                if self.stop_event.is_set():
                    return
                result = Cycle(config, store, stop=self.stop_event).run()
        except StateLocked as exc:
            # Another process (a --run-now) is doing a cycle: come back soon rather than only at
            # the next regular run, which may be hours away.
            log.warning("%s; retrying in %gs", exc, LOCKED_RETRY_SECONDS)
            if self.scheduler is not None:
                self.scheduler.request_early_run(datetime.now(UTC) + timedelta(seconds=LOCKED_RETRY_SECONDS))
            return
        except Exception as exc:  # noqa: BLE001 - e.g. a read-only or full disk: a failed cycle
            from daemon.reporting import escaped_error_result
            result = escaped_error_result(exc)
            log.error("%s", result.errors[0])
        from daemon.reporting import report_cycle
        report_cycle(config, store, result, metrics=self.metrics)
        self.last_result_ok = not _has_failures(result)
        issued = sum(1 for c in result.certificates if c.action == "issued")
        failed = sum(1 for c in result.certificates if c.action == "failed") + \
            sum(1 for t in result.targets if t.action == "failed")
        log.info("cycle done in %.1fs: %d issued, %d failed, %d target(s) checked",
                 (result.finished - result.started).total_seconds(), issued, failed, len(result.targets))
        self._schedule_retry(store)

    def _schedule_retry(self, store: StateStore) -> None:
        """Wake for the soonest certificate: a failure's backoff, else its next renewal time
        (jittered by ``schedule.jitter``, never past the end of its window)."""
        if self.scheduler is None:
            return
        soonest = next_wakeup(self.config, store, datetime.now(UTC))
        if soonest is not None:
            self.scheduler.request_early_run(soonest)

    def health(self) -> dict:
        """/healthz: "failing" (HTTP 503) after a cycle in which anything failed, a cycle that
        could not run included; "ok" otherwise."""
        from daemon.metrics import _health_from
        doc = _health_from(self.metrics.registry) if self.metrics is not None else {"last_cycle": None}
        doc["status"] = "failing" if self.last_result_ok is False else "ok"
        return doc

    def reload(self) -> None:
        from daemon.config_load import ConfigError
        try:
            new = self.config_loader()
        except ConfigError as exc:
            for line in exc.lines():
                log.error("reload refused, keeping the old configuration: %s", line)
            return
        self.config = new
        log.info("configuration reloaded from %s (%d certificate(s))", new.path, len(new.certificates))
        if self.scheduler is not None:
            self.scheduler.reschedule(new.schedule)

    def run(self) -> int:
        from daemon import sdnotify
        from daemon.scheduler import DaemonScheduler, install_signal_handlers

        StateStore(self.config.state_dir).ensure()
        from daemon.renewal_rules import renewal_warnings
        for line in renewal_warnings(self.config):
            log.warning("%s", line)
        if self.config.metrics.listen:
            from daemon.metrics import DaemonMetrics, MetricsServer
            self.metrics = DaemonMetrics()
            self.metrics_server = MetricsServer(self.metrics, self.config.metrics.listen, health=self.health)
            self.metrics_server.start()
            log.info("metrics at http://%s/metrics", self.config.metrics.listen)
        self.scheduler = DaemonScheduler(self.run_cycle, self.config.schedule, log=log)

        def on_stop() -> None:
            if not self.stop_event.is_set():
                log.info("stopping: finishing or abandoning in-flight work")
                sdnotify.stopping()
                self.stop_event.set()

        def on_reload() -> None:
            threading.Thread(target=self.reload, name="reload", daemon=True).start()

        restore = install_signal_handlers(on_stop, on_reload)
        try:
            self.scheduler.start()
            sdnotify.ready()
            sdnotify.status("running")
            interval = sdnotify.watchdog_interval()
            drained = self.scheduler.run_forever(
                self.stop_event, heartbeat=sdnotify.watchdog if interval else None,
                heartbeat_interval=interval, drain_timeout=DRAIN_SECONDS)
        finally:
            restore()
            if self.metrics_server is not None:
                self.metrics_server.stop()
        if not drained:
            # A step that ignores the stop flag must not keep the process past systemd's stop
            # timeout; the journal and the state lock make the next run clean up after it.
            log.warning("exiting with work still in flight; the next run cleans up after it")
            logging.shutdown()
            os._exit(0)
        log.info("stopped")
        return 0


def _has_failures(result) -> bool:
    """Anything failed (not merely due or backing off): what makes /healthz fail."""
    return bool(result.errors) or any(c.action == "failed" for c in result.certificates) or any(
        t.error and t.action != "skipped" for t in result.targets)


def next_wakeup(config: Config, store: StateStore, now: datetime,
                rng: random.Random | None = None) -> datetime | None:
    """The soonest time any certificate needs a cycle, from what the last cycle recorded."""
    rng = rng or random.Random()
    soonest = None
    for cert in config.certificates:
        try:
            runtime = store.read_runtime(cert.name)
        except Exception:  # noqa: BLE001 - a bad runtime file is reported by the cycle
            continue
        at = parse_time(runtime.get("next_attempt"))
        plan = runtime.get("next_renewal") or {}
        renew_at, latest = parse_time(plan.get("at")), parse_time(plan.get("latest"))
        if renew_at is not None:
            wake = planner.wake_time(planner.RenewalSchedule(renew_at, str(plan.get("why")), latest or renew_at),
                                     config.schedule.jitter or 0.0, rng)
            at = wake if at is None else min(at, wake)
        if at is not None and (soonest is None or at < soonest):
            soonest = at
    if soonest is None:
        return None
    return max(soonest, now + timedelta(seconds=MIN_WAKE_SECONDS))


def run_daemon(config: Config, *, config_loader: Callable[[], Config]) -> int:
    return Service(config, config_loader).run()
