"""Step 6 of a cycle: record results (runtime + deploy records).

``status`` and the next cycle read these: failure counts and backoff, last success, and per
target what was deployed and verified when. Bookkeeping never hides the real result: a record
that cannot be written becomes a cycle error.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING

from daemon import planner
from daemon.errors import describe_error
from daemon.outcomes import NOT_VERIFIED, CycleResult, TargetOutcome, parse_time, rfc3339, target_key

if TYPE_CHECKING:
    from daemon.cycle import Cycle

log = logging.getLogger("alicertd")


def record(cycle: Cycle, result: CycleResult) -> None:
    now = cycle.clock()
    cap = cycle.config.schedule.interval or 12 * 3600.0
    by_cert: dict[str, list[TargetOutcome]] = defaultdict(list)
    for t in result.targets:
        by_cert[t.certificate].append(t)
    for outcome in result.certificates:
        name = outcome.name
        try:
            runtime = cycle.pending_runtime.get(name) or cycle.store.read_runtime(name)
            runtime["last_attempt"] = rfc3339(now)
            target_errors = [f"{t.target.provider} {t.target.name}: {t.error}"
                             for t in by_cert[name] if t.error and t.action != "skipped"]
            interrupted = outcome.action == "skipped" or any(
                t.action == "skipped" and t.error for t in by_cert[name])
            if outcome.action == "failed":
                prev = None
                if runtime.get("failures") and parse_time(runtime.get("last_failure")):
                    prev = planner.FailureState(int(runtime["failures"]),
                                                parse_time(runtime["last_failure"]),
                                                parse_time(runtime.get("next_attempt")) or now)
                fs = planner.backoff_after_failure(prev, now, cap, outcome.retry_after)
                runtime.update(last_result="failed", last_error=outcome.error, failures=fs.failures,
                               last_failure=rfc3339(fs.last_failure), next_attempt=rfc3339(fs.next_attempt))
                outcome.schedule = planner.RenewalSchedule(fs.next_attempt, f"retry after failure {fs.failures}",
                                                           fs.next_attempt)
            elif interrupted or outcome.decision.backing_off:
                # Neither a success nor a new failure (shut down before it could finish, or
                # still backing off): the failure count and the backoff stay as they were.
                pass
            else:
                for key in ("failures", "last_failure", "next_attempt"):
                    runtime.pop(key, None)
                runtime["last_result"] = "failed" if target_errors else "ok"
                runtime["last_error"] = "; ".join(target_errors) or None
                if not target_errors:
                    runtime["last_success"] = rfc3339(now)
            if outcome.action == "issued":
                runtime["last_issued"] = rfc3339(now)
            if outcome.schedule is not None and outcome.action != "skipped":
                runtime["next_renewal"] = {"at": rfc3339(outcome.schedule.at), "why": outcome.schedule.why,
                                           "latest": rfc3339(outcome.schedule.latest)}
            cycle.store.write_runtime(name, runtime)

            records = cycle.store.read_deploy(name)
            for t in by_cert[name]:
                key = target_key(t.target)
                rec = records.get(key, {"provider": t.target.provider, "target": t.target.name})
                rec["last_checked"] = rfc3339(now)
                b = t.binding
                bundle = cycle.ctx.bundles.get(name) if cycle.ctx is not None else None
                if t.action == "verified" and bundle is not None:
                    rec.update(serial=bundle.serial, fingerprint=bundle.fingerprint,
                               state="ok", verified_at=rfc3339(now), last_error=None)
                    if t.reason not in (planner.ROLLOUT_PENDING, NOT_VERIFIED):
                        rec["deployed_at"] = rfc3339(now)
                    if b is not None and b.cert_name:
                        rec["cert_name"] = b.cert_name
                elif t.action == "none" and t.reason == planner.UP_TO_DATE and b is not None:
                    rec.update(serial=b.serial or rec.get("serial"),
                               fingerprint=b.fingerprint or rec.get("fingerprint"),
                               state=b.state, last_error=None)
                    rec.setdefault("verified_at", rfc3339(now))
                elif t.action == "failed":
                    rec.update(state="error", last_error=t.error)
                    if b is not None:
                        rec.update(seen_serial=b.serial)
                records[key] = rec
            cycle.store.write_deploy(name, records)
        except Exception as exc:  # noqa: BLE001 - bookkeeping must not hide the real result
            log.error("cannot record the result: %s", describe_error(exc)[1], extra={"certificate": name})
            result.errors.append(f"{name}: cannot record result")
