"""``alicertd`` without ``--run-now``: the long-lived daemon.

The scheduler calls the same :class:`~daemon.cycle.Cycle` as ``--run-now``; this module only
adds what a service needs: the state lock held while a cycle runs (so a ``--run-now`` beside us
waits instead of racing), SIGTERM/SIGINT (stop taking work, let in-flight steps finish or
abandon them with their DNS records removed, exit 0 within 10 s), SIGHUP (reload: the new
config applied whole, or refused and the old one kept whole; a refusal fails /healthz, the
reload metrics, a notification and ``status`` until a reload succeeds, see daemon.reloads),
sd_notify READY/RELOADING/WATCHDOG/STOPPING, metrics, and a wake-up at each certificate's own
next renewal time (its ARI pick, its lifetime rule, or a failure's backoff), whatever
``interval``/``cron`` say: those stay the cadence for checking targets and ARI, and a 6-day
certificate must not wait for a 3-day interval.
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
from daemon.reloads import ReloadOutcome, public_reason
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
        from daemon.metrics import DaemonMetrics
        # Kept with or without [metrics] listen: a reload may turn the endpoint on, and it then
        # shows the reloads and cycles before it.
        self.metrics = DaemonMetrics()
        self.metrics_server = None
        self.scheduler = None
        self.last_result_ok: bool | None = None  # for /healthz: None until the first cycle
        self.last_reload = ReloadOutcome(ok=True, at=datetime.now(UTC))  # the start loaded it
        self.metrics.reload_successful.set(1)
        self.metrics.reload_success_time.set(self.last_reload.at)
        self.metrics.reloads_refused.inc(0)
        self._reload_lock = threading.Lock()

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
        could not run included, and while the last reload stands refused (``reload_refused``
        says when and why: the daemon runs a configuration that is not the file's); "ok"
        otherwise."""
        from daemon.metrics import _health_from
        doc = _health_from(self.metrics.registry)
        refused = self.last_reload.refused()
        doc["status"] = "failing" if self.last_result_ok is False or refused else "ok"
        doc["reload_refused"] = refused
        return doc

    def reload(self) -> None:
        """SIGHUP: apply the file whole, or keep the running configuration whole and report the
        refusal everywhere. Never raises (it runs in its own thread, where an exception would
        only print a traceback), and one at a time, so that two quick SIGHUPs cannot interleave.
        RELOADING=1 is always followed by READY=1: without it systemd shows the unit reloading
        until its timeout."""
        from daemon import sdnotify
        with self._reload_lock:
            if self.stop_event.is_set():
                log.info("reload ignored: the daemon is stopping")
                return
            previous = self.config
            sdnotify.reloading()
            status = "running"
            try:
                reasons = self._load_and_apply()
                outcome = ReloadOutcome(not reasons, datetime.now(UTC), tuple(map(public_reason, reasons)))
                self.last_reload = outcome
                if reasons:
                    status = f"running the previous configuration; reload refused: {outcome.reasons[0]}"
            finally:
                sdnotify.ready(status)
            self._report_reload(outcome, previous)

    def _load_and_apply(self) -> list[str]:
        """Load and apply the file; the reasons it was refused (nothing changed), or []."""
        from daemon.config_load import ConfigError
        from daemon.reloads import load_error_line
        try:
            new = self.config_loader()
        except ConfigError as exc:
            return exc.lines()
        except Exception as exc:  # noqa: BLE001 - an unreadable file or a bug must not end the daemon
            log.debug("loading the configuration failed", exc_info=True)
            return [load_error_line(self.config.path, exc)]
        try:
            self._apply(new)
        except _Refused as exc:
            return [f"{new.path}: {exc}"]
        except Exception as exc:  # noqa: BLE001 - as above; _apply has undone its steps
            log.debug("applying the configuration failed", exc_info=True)
            return [load_error_line(new.path, exc)]
        log.info("configuration reloaded from %s (%d certificate(s))", new.path, len(new.certificates))
        from daemon.renewal_rules import renewal_warnings
        try:
            for line in renewal_warnings(new):
                log.warning("%s", line)
        except Exception:  # noqa: BLE001 - advice only; the reload is done
            log.debug("renewal warnings failed", exc_info=True)
        return []

    def _apply(self, new: Config) -> None:
        """Switch to ``new``: the steps that can fail (the schedule's trigger, a new state dir,
        a new metrics address) are prepared first, and a failure undoes what was prepared, so
        the running configuration stays whole. A new metrics address is bound before the old
        one is closed: moving to another address on the same port needs a restart."""
        from daemon.errors import describe_error
        from daemon.metrics import MetricsServer
        from daemon.scheduler import make_trigger
        from daemon.state import StateError
        old = self.config
        try:
            make_trigger(new.schedule)
        except ValueError as exc:
            raise _Refused(f"schedule: {exc}") from None
        if new.state_dir != old.state_dir:
            try:
                StateStore(new.state_dir).ensure()
            except StateError as exc:
                raise _Refused(f"state_dir: {exc}") from None
        moved = new.metrics.listen != old.metrics.listen
        server = None
        if moved and new.metrics.listen:
            server = MetricsServer(self.metrics, new.metrics.listen, health=self.health)
            try:
                server.start()
            except (OSError, ValueError) as exc:
                raise _Refused(f"metrics.listen: cannot listen on {new.metrics.listen}: "
                               f"{describe_error(exc)[1]}") from None
        self.config = new  # before the reschedule: the cycle it starts must see the new config
        try:
            if self.scheduler is not None:
                self.scheduler.reschedule(new.schedule)
        except Exception as exc:
            self.config = old
            if server is not None:
                server.stop()
            try:
                self.scheduler.reschedule(old.schedule, run_now=False)
            except Exception as again:  # noqa: BLE001
                log.error("could not restore the previous schedule: %s", describe_error(again)[1])
            raise _Refused(f"schedule: cannot apply it: {describe_error(exc)[1]}") from None
        if moved:
            replaced, self.metrics_server = self.metrics_server, server
            if replaced is not None:
                replaced.stop()
            if server is not None:
                log.info("metrics at http://%s/metrics", new.metrics.listen)
            else:
                log.info("metrics endpoint closed (no [metrics] listen)")

    def _report_reload(self, outcome: ReloadOutcome, previous: Config) -> None:
        """The outcome everywhere but /healthz (which reads ``last_reload``): the journal, the
        metrics, ``state_dir/reload.json`` for ``status`` (cleared in the previous state dir too
        when a reload moved it), and one notification for a refusal."""
        from daemon.errors import describe_error
        for line in outcome.reasons:
            log.error("reload refused, keeping the old configuration: %s", line)
        self.metrics.reload_successful.set(1 if outcome.ok else 0)
        if outcome.ok:
            self.metrics.reload_success_time.set(outcome.at)
        else:
            self.metrics.reloads_refused.inc()
        for state_dir in sorted({previous.state_dir, self.config.state_dir}):
            store = StateStore(state_dir)
            try:
                if outcome.ok:
                    store.clear_reload_refused()
                else:
                    store.write_reload_refused(outcome.refused())
            except Exception as exc:  # noqa: BLE001 - the other surfaces still tell
                log.warning("cannot record the reload outcome in %s: %s", state_dir, describe_error(exc)[1])
        if not outcome.ok and self.config.notify:
            from daemon.notify import Notifier
            from daemon.reloads import refused_event
            Notifier(self.config.notify, log).send(refused_event(outcome))

    def run(self) -> int:
        from daemon import sdnotify
        from daemon.scheduler import DaemonScheduler, install_signal_handlers

        store = StateStore(self.config.state_dir)
        store.ensure()
        store.clear_reload_refused()  # a refusal of an earlier process: this one loaded the file
        from daemon.renewal_rules import renewal_warnings
        for line in renewal_warnings(self.config):
            log.warning("%s", line)
        if self.config.metrics.listen:
            from daemon.metrics import MetricsServer
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


class _Refused(Exception):
    """A step of applying a reloaded config failed; the message names its key."""


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
