"""``alicertd --run-now`` (and ``--dry-run``): one cycle under the state lock, a table, an exit
code that follows the contract."""

from __future__ import annotations

import logging
import sys

from daemon.config import Config
from daemon.cycle import Cycle, CycleResult, rfc3339
from daemon.state import StateLocked, StateStore
from daemon.tables import render_table as _render


def render_table(headers, rows) -> str:
    return _render(headers, rows).rstrip("\n")

log = logging.getLogger("alicertd")


def run_once(config: Config, *, dry_run: bool = False, force: tuple[str, ...] = ()) -> int:
    store = StateStore(config.state_dir)
    if dry_run:
        # Reads only: no lock (writers replace files atomically), no state dir created.
        result = Cycle(config, store).run(force=force, dry_run=True)
        print(render_plan(result))
        return 0 if result.plan_ok else 1
    try:
        with store.lock(config.runtime.lock_timeout):
            result = Cycle(config, store).run(force=force)
    except StateLocked:
        raise
    except Exception as exc:  # noqa: BLE001 - a cycle that could not run (a read-only or full
        # disk, a bug): a failed cycle, reported and notified like any other failure
        from daemon.reporting import escaped_error_result
        result = escaped_error_result(exc)
        log.error("%s", result.errors[0])
    from daemon.reporting import report_cycle
    report_cycle(config, store, result)
    print(render_summary(result))
    return 0 if result.ok else 1


def render_plan(result: CycleResult) -> str:
    cert_rows = []
    for c in result.certificates:
        action = "issue" if c.decision.due else ("error" if c.action == "failed" else "keep")
        cert_rows.append([c.name, action, c.decision.reason, c.serial or "-", rfc3339(c.not_after) or "-"])
    target_rows = []
    for t in result.targets:
        due = {"up to date": "keep", "rollout pending": "verify", "not yet verified": "verify"}.get(
            t.reason, "bind")
        cert_due = next(c for c in result.certificates if c.name == t.certificate).decision.due
        if cert_due:
            due = "bind"
        if t.action == "failed":
            due = "error"
        target_rows.append([t.certificate, t.target.provider, t.target.name, due,
                            t.error if t.action == "failed" else ("new certificate" if cert_due else t.reason)])
    out = ["Plan (dry run: nothing is changed)", "",
           render_table(["certificate", "action", "reason", "serial", "not after"], cert_rows)]
    if target_rows:
        out += ["", render_table(["certificate", "provider", "target", "action", "reason"], target_rows)]
    out += [f"error: {c.name}: renewal information: {c.ca_error}" for c in result.certificates if c.ca_error]
    out += [f"error: {e}" for e in result.errors]
    out += [f"cas: {n}" for n in result.notes]
    return "\n".join(out)


def render_summary(result: CycleResult) -> str:
    cert_rows = [[c.name, c.action if c.action != "none" else ("valid" if c.serial else "missing"),
                  c.decision.reason,
                  c.serial or "-", rfc3339(c.not_after) or "-", c.error or ""]
                 for c in result.certificates]
    target_rows = [[t.certificate, t.target.provider, t.target.name,
                    t.action if t.action != "none" else t.reason,
                    (t.binding.serial if t.binding and t.binding.serial else "-"), t.error or ""]
                   for t in result.targets]
    out = [render_table(["certificate", "result", "reason", "serial", "not after", "error"], cert_rows)]
    if target_rows:
        out += ["", render_table(["certificate", "provider", "target", "result", "serving serial", "error"],
                                 target_rows)]
    out += ["", *(f"cas: {n}" for n in result.notes), *(f"error: {e}" for e in result.errors),
            f"cycle {'succeeded' if result.ok else 'FAILED'} in "
            f"{(result.finished - result.started).total_seconds():.1f}s"]
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: alicertd --run-now")
