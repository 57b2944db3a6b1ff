"""One cycle: plan, then act. The daemon and ``--run-now`` both call :meth:`Cycle.run`.

1. Remove DNS records a crashed run left behind (from the journal).
2. Decide per certificate whether it is due (``daemon.cycle_plan``; pure: ``daemon.planner``).
3. Issue the due ones concurrently (``daemon.cycle_issue``); each result is committed atomically.
4. Read what every target serves, batched per provider (``daemon.cycle_deploy``).
5. Bind and verify the targets that do not serve their current certificate (same module).
6. Record results (runtime + deploy records) so ``status`` and the next cycle see them
   (``daemon.cycle_record``).

One failure never stops the others: every certificate and every target is its own unit of
work with its own error. ``--dry-run`` stops after step 4 and changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from daemon import cas_cleanup, cycle_deploy, cycle_issue, cycle_plan, cycle_record
from daemon.config import Config
from daemon.errors import describe_error
from daemon.outcomes import (  # noqa: F401 - re-exported: the cycle's public vocabulary
    NOT_VERIFIED,
    CertOutcome,
    CycleResult,
    TargetOutcome,
    parse_time,
    rfc3339,
    target_key,
    utcnow,
)
from daemon.state import StateStore, StoredCertificate
from providers.base import ProviderContext

log = logging.getLogger("alicertd")


class Cycle:
    def __init__(self, config: Config, store: StateStore, *, stop: threading.Event | None = None,
                 clock: Callable[[], datetime] = utcnow, issuer_factory: Callable[..., Any] | None = None):
        self.config = config
        self.store = store
        self.stop = stop or threading.Event()
        self.clock = clock
        self._issuer_factory = issuer_factory
        self._issuer = None
        self._issuer_lock = threading.Lock()
        self._providers: dict[str, Any] = {}
        self._providers_lock = threading.Lock()
        self.ctx: ProviderContext | None = None
        # runtime records changed during planning (ARI answers), written by the record step
        self.pending_runtime: dict[str, dict[str, Any]] = {}
        self.ari_errors: dict[str, str] = {}  # certificate -> why its renewalInfo could not be read

    # -- plumbing --------------------------------------------------------------

    def issuer(self):
        """The ACME side, created on first use: a cycle with nothing due never contacts the CA
        (beyond ARI checks that are themselves due)."""
        with self._issuer_lock:
            if self._issuer is None:
                if self._issuer_factory is not None:
                    self._issuer = self._issuer_factory(self.config, self.store, self.stop)
                else:
                    from daemon.issuer import Issuer
                    self._issuer = Issuer(self.config, self.store, stop=self.stop)
            return self._issuer

    def provider(self, name: str):
        with self._providers_lock:
            if name not in self._providers:
                from providers.registry import get_provider
                cls = get_provider(name)
                self._providers[name] = cls(self.ctx)
            return self._providers[name]

    # -- the cycle -------------------------------------------------------------

    def run(self, *, force: Iterable[str] = (), dry_run: bool = False) -> CycleResult:
        result = CycleResult(started=self.clock(), dry_run=dry_run)
        self.ctx = ProviderContext(config=self.config, journal=self.store.journal,
                                   log=logging.getLogger("alicertd.providers"), stop=self.stop,
                                   dry_run=dry_run, cas_records=self.store.cas)
        force = set(force)
        if not dry_run:
            self._clean_leftovers(result)

        stored: dict[str, StoredCertificate | None] = {}
        certs = self.config.certificates
        workers = max(1, min(self.config.runtime.concurrency, len(certs)))
        # Planning may ask the CA for renewal information (one GET per certificate whose
        # Retry-After has passed): round trips to a CA abroad add up, so they overlap.
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plan") as pool:
            planned = list(pool.map(lambda c: cycle_plan.plan_certificate(self, c, c.name in force), certs))
        for cert, (outcome, current) in zip(certs, planned, strict=True):
            result.certificates.append(outcome)
            stored[cert.name] = current

        due = [c for c in self.config.certificates
               if next(o for o in result.certificates if o.name == c.name).decision.due]
        if due and not dry_run and not self.stop.is_set():
            cycle_issue.issue_all(self, due, result, stored)

        cycle_deploy.deploy(self, result, stored, dry_run=dry_run)
        cas_cleanup.run(self, result, dry_run=dry_run)  # superseded CAS uploads; plan in dry run
        if not dry_run:
            if self.store.journal.count():  # a delete that failed during issuance: try again now
                self._clean_leftovers(result)
                if self.store.journal.count():
                    result.errors.append(f"{self.store.journal.count()} DNS challenge record(s) could "
                                         f"not be removed yet; the next run retries")
            cycle_record.record(self, result)
        result.finished = self.clock()
        return result

    def _clean_leftovers(self, result: CycleResult) -> None:
        if not self.store.journal.count():
            return
        try:
            removed = self.provider(self.config.dns.provider).cleanup_leftovers()
            if removed:
                log.info("removed %d DNS record(s) left behind by an interrupted run", removed)
        except Exception as exc:  # noqa: BLE001 - reported, the cycle goes on
            text = describe_error(exc)[1]
            log.error("cleanup of leftover DNS records failed: %s", text)
            result.errors.append(f"DNS cleanup: {text}")
