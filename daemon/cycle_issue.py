"""Step 3 of a cycle: issue the due certificates concurrently (a bounded pool).

Each result is committed atomically by the issuer; one failure never stops the others, and a
shutdown abandons work without counting it as a failure (no backoff, no failure report).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from daemon import planner
from daemon.acme.problems import RateLimited
from daemon.config import CertificateConfig
from daemon.errors import describe_error
from daemon.outcomes import CycleResult, rfc3339
from daemon.state import StoredCertificate

if TYPE_CHECKING:
    from daemon.cycle import Cycle

log = logging.getLogger("alicertd")


def issue_all(cycle: Cycle, due: list[CertificateConfig], result: CycleResult,
               stored: dict[str, StoredCertificate | None]) -> None:
    outcomes = {o.name: o for o in result.certificates}
    workers = max(1, min(cycle.config.runtime.concurrency, len(due)))

    def one(cert: CertificateConfig) -> None:
        outcome = outcomes[cert.name]
        clog = logging.LoggerAdapter(log, {"certificate": cert.name})
        if cycle.stop.is_set():
            outcome.action = "skipped"
            outcome.error = "shutting down"
            return
        clog.info("issuing (%s): %s", outcome.decision.reason, ", ".join(cert.domains))
        try:
            previous = stored.get(cert.name)
            dns = cycle.provider(cycle.config.dns.provider)
            new = cycle.issuer().issue(cert, dns, previous.fullchain_pem if previous else None,
                                       previous.meta if previous else None)
            stored[cert.name] = cycle.store.read_certificate(cert.name)
            outcome.action = "issued"
            outcome.serial, outcome.not_after = new.serial, new.not_after
            outcome.renewed = previous is not None
            outcome.schedule = _schedule_of_new(cycle, cert, stored[cert.name])
            clog.info("issued serial %s, valid until %s; renewal due %s (%s)", new.serial,
                      rfc3339(new.not_after), rfc3339(outcome.schedule.at) if outcome.schedule else "-",
                      outcome.schedule.why if outcome.schedule else "-")
        except Exception as exc:  # noqa: BLE001 - one certificate never stops the others
            if cycle.stop.is_set():
                # Abandoned for a shutdown, not failed: no backoff, no failure report.
                outcome.action, outcome.error = "skipped", "shutting down"
                clog.info("issuance abandoned: shutting down (%s)", describe_error(exc)[1])
                return
            outcome.action = "failed"
            outcome.error = describe_error(exc)[1]
            if isinstance(exc, RateLimited) and exc.retry_after:
                outcome.retry_after = exc.retry_after
            clog.error("issuance failed: %s", outcome.error)

    if workers == 1:
        for cert in due:
            one(cert)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="issue") as pool:
            list(pool.map(one, due))


def _schedule_of_new(cycle: Cycle, cert: CertificateConfig, current: StoredCertificate | None):
    """The renewal time of a chain issued just now (no ARI yet: the next cycle asks)."""
    if current is None:
        return None
    from daemon.keys import certificate_info
    info = certificate_info(current.fullchain_pem)
    issued = planner.IssuedState(serial=info.serial, not_before=info.not_before, not_after=info.not_after,
                                 domains=tuple(info.sans), key_type=cert.key_type)
    return planner.renewal_schedule(cert.name, issued, cert.renew_before_days or cycle.config.acme.renew_before_days,
                                    now=cycle.clock())
