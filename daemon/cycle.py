"""One cycle: plan, then act. The daemon and ``--run-now`` both call :meth:`Cycle.run`.

1. Remove DNS records a crashed run left behind (from the journal).
2. Decide per certificate whether it is due (pure: ``daemon.planner``).
3. Issue the due ones concurrently (a bounded pool); each result is committed atomically.
4. Read what every target serves, batched per provider (pages, not one call per domain).
5. Bind and verify the targets that do not serve their current certificate.
6. Record results (runtime + deploy records) so ``status`` and the next cycle see them.

One failure never stops the others: every certificate and every target is its own unit of
work with its own error. ``--dry-run`` stops after step 4 and changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from daemon import planner
from daemon.config import CertificateConfig, Config
from daemon.errors import describe_error
from daemon.state import StateStore, StoredCertificate
from providers.base import Binding, CertificateBundle, ProviderContext, Target

log = logging.getLogger("alicertd")


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


NOT_VERIFIED = "not yet verified"
BIND_WORKERS = 8  # concurrent bind calls (Alibaba's per-action QPS limits are 10-30/s)
VERIFY_WORKERS = 64  # concurrent rollout waits (threads that mostly sleep between polls)


def target_key(target: Target) -> str:
    return f"{target.provider}:{target.name}"


# --------------------------------------------------------------------------- results


@dataclass
class CertOutcome:
    name: str
    decision: planner.CertDecision
    action: str = "none"  # none | issued | failed | skipped
    error: str | None = None
    serial: str | None = None
    not_after: datetime | None = None
    renewed: bool = False  # issued while an older chain existed


@dataclass
class TargetOutcome:
    certificate: str
    target: Target
    reason: str
    action: str = "none"  # none | bound | verified | failed | skipped
    error: str | None = None
    binding: Binding | None = None


@dataclass
class CycleResult:
    started: datetime
    finished: datetime | None = None
    certificates: list[CertOutcome] = field(default_factory=list)
    targets: list[TargetOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # cycle-wide (e.g. DNS leftovers)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """Contract: every certificate valid and not due, deployed to every target."""
        if self.errors:
            return False
        # A certificate in its failure backoff is due in all but name: a missing one (or one
        # inside its renewal window) is not "valid", whether or not it has targets to fail.
        certs_ok = all(c.action != "failed" and (not c.decision.due or c.action == "issued")
                       and not c.decision.backing_off for c in self.certificates)
        targets_ok = all(t.action in ("none", "bound", "verified") and t.error is None
                         for t in self.targets)
        if self.dry_run:
            return certs_ok and targets_ok and not any(t.action != "none" or t.reason != planner.UP_TO_DATE
                                                       for t in self.targets)
        return certs_ok and targets_ok


# --------------------------------------------------------------------------- the cycle


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
        # runtime records changed during planning (ARI answers), written in _record
        self._pending_runtime: dict[str, dict[str, Any]] = {}

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
                                   dry_run=dry_run)
        force = set(force)
        if not dry_run:
            self._clean_leftovers(result)

        stored: dict[str, StoredCertificate | None] = {}
        certs = self.config.certificates
        workers = max(1, min(self.config.runtime.concurrency, len(certs)))
        # Planning may ask the CA for renewal information (one GET per certificate whose
        # Retry-After has passed): round trips to a CA abroad add up, so they overlap.
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plan") as pool:
            planned = list(pool.map(lambda c: self._plan_certificate(c, c.name in force), certs))
        for cert, (outcome, current) in zip(certs, planned, strict=True):
            result.certificates.append(outcome)
            stored[cert.name] = current

        due = [c for c in self.config.certificates
               if next(o for o in result.certificates if o.name == c.name).decision.due]
        if due and not dry_run and not self.stop.is_set():
            self._issue_all(due, result, stored)

        self._deploy(result, stored, dry_run=dry_run)
        if not dry_run:
            if self.store.journal.count():  # a delete that failed during issuance: try again now
                self._clean_leftovers(result)
                if self.store.journal.count():
                    result.errors.append(f"{self.store.journal.count()} DNS challenge record(s) could "
                                         f"not be removed yet; the next run retries")
            self._record(result)
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

    def _plan_certificate(self, cert: CertificateConfig, forced: bool
                          ) -> tuple[CertOutcome, StoredCertificate | None]:
        now = self.clock()
        runtime = {}
        try:
            current = self.store.read_certificate(cert.name)
            runtime = self.store.read_runtime(cert.name)
            issued = self._issued_state(cert, current, runtime)
        except Exception as exc:  # noqa: BLE001 - a corrupt state file fails this cert only
            text = describe_error(exc)[1]
            decision = planner.CertDecision(cert.name, False, f"cannot read state: {text}")
            return CertOutcome(cert.name, decision, action="failed", error=text), None
        failure = None
        if runtime.get("failures"):
            last = parse_time(runtime.get("last_failure"))
            nxt = parse_time(runtime.get("next_attempt"))
            if last and nxt:
                failure = planner.FailureState(int(runtime["failures"]), last, nxt)
        renew_days = cert.renew_before_days or self.config.acme.renew_before_days
        revoked = issued is not None and runtime.get("revoked_serial") == issued.serial
        decision = planner.plan_certificate(cert, issued, renew_before_days=renew_days,
                                            force=forced or revoked, now=now, failure=failure)
        if revoked and not forced:
            decision = planner.CertDecision(cert.name, True, "revoked", None)
        outcome = CertOutcome(cert.name, decision)
        if issued is not None:
            outcome.serial, outcome.not_after = issued.serial, issued.not_after
        return outcome, current

    def _issued_state(self, cert: CertificateConfig, current: StoredCertificate | None,
                      runtime: dict[str, Any]) -> planner.IssuedState | None:
        if current is None:
            return None
        from daemon.keys import certificate_info
        info = certificate_info(current.fullchain_pem)
        ari = runtime.get("ari") or {}
        window = None
        if ari.get("serial") == info.serial and ari.get("start") and ari.get("end"):
            window = (parse_time(ari["start"]), parse_time(ari["end"]))
        retry_after = parse_time(ari.get("retry_after")) if window else None
        issued = planner.IssuedState(serial=info.serial, not_before=info.not_before,
                                     not_after=info.not_after,
                                     domains=tuple(current.meta.get("domains") or info.sans),
                                     key_type=current.meta.get("key_type") or info.key_type,
                                     ari_window=window, ari_retry_after=retry_after)
        uses_ari = (cert.renew_before_days or self.config.acme.renew_before_days) is None
        if uses_ari and planner.ari_refresh_due(issued, self.clock()):
            issued = self._refresh_ari(cert, current, issued, runtime)
        return issued

    def _refresh_ari(self, cert, current, issued, runtime):
        """Ask the CA's renewalInfo (RFC 9773) and remember the answer until its Retry-After."""
        try:
            info = self.issuer().renewal_info(current.fullchain_pem)
        except Exception as exc:  # noqa: BLE001 - ARI is advisory: fall back to the lifetime rule
            log.warning("renewal information unavailable: %s", describe_error(exc)[1],
                        extra={"certificate": cert.name})
            return issued
        if info is None:
            return issued
        start, end, retry_after = info
        runtime["ari"] = {"serial": issued.serial, "start": rfc3339(start), "end": rfc3339(end),
                          "retry_after": rfc3339(retry_after)}
        self._pending_runtime[cert.name] = runtime
        return planner.IssuedState(serial=issued.serial, not_before=issued.not_before,
                                   not_after=issued.not_after, domains=issued.domains,
                                   key_type=issued.key_type, ari_window=(start, end),
                                   ari_retry_after=retry_after)

    # -- issuance --------------------------------------------------------------

    def _issue_all(self, due: list[CertificateConfig], result: CycleResult,
                   stored: dict[str, StoredCertificate | None]) -> None:
        outcomes = {o.name: o for o in result.certificates}
        workers = max(1, min(self.config.runtime.concurrency, len(due)))

        def one(cert: CertificateConfig) -> None:
            outcome = outcomes[cert.name]
            clog = logging.LoggerAdapter(log, {"certificate": cert.name})
            if self.stop.is_set():
                outcome.action = "skipped"
                outcome.error = "shutting down"
                return
            clog.info("issuing (%s): %s", outcome.decision.reason, ", ".join(cert.domains))
            try:
                previous = stored.get(cert.name)
                dns = self.provider(self.config.dns.provider)
                new = self.issuer().issue(cert, dns, previous.fullchain_pem if previous else None)
                stored[cert.name] = self.store.read_certificate(cert.name)
                outcome.action = "issued"
                outcome.serial, outcome.not_after = new.serial, new.not_after
                outcome.renewed = previous is not None
                clog.info("issued serial %s, valid until %s", new.serial,
                          rfc3339(new.not_after))
            except Exception as exc:  # noqa: BLE001 - one certificate never stops the others
                if self.stop.is_set():
                    # Abandoned for a shutdown, not failed: no backoff, no failure report.
                    outcome.action, outcome.error = "skipped", "shutting down"
                    clog.info("issuance abandoned: shutting down (%s)", describe_error(exc)[1])
                    return
                outcome.action = "failed"
                outcome.error = describe_error(exc)[1]
                clog.error("issuance failed: %s", outcome.error)

        if workers == 1:
            for cert in due:
                one(cert)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="issue") as pool:
                list(pool.map(one, due))

    # -- deployment ------------------------------------------------------------

    def _deploy(self, result: CycleResult, stored: dict[str, StoredCertificate | None], *,
                dry_run: bool) -> None:
        outcomes = {o.name: o for o in result.certificates}
        bundles: dict[str, CertificateBundle] = {}
        per_provider: dict[str, list[tuple[str, Target]]] = defaultdict(list)
        for cert in self.config.certificates:
            current = stored.get(cert.name)
            for deploy in cert.deploy:
                cls = _provider_class(deploy.provider)
                for target in cls.expand(deploy.settings):
                    if current is None:
                        reason = "no certificate yet" if dry_run and outcomes[cert.name].decision.due \
                            else "no certificate"
                        result.targets.append(TargetOutcome(cert.name, target, reason,
                                                            action="skipped" if not dry_run else "none"))
                        continue
                    per_provider[deploy.provider].append((cert.name, target))
            if current is not None:
                bundles[cert.name] = _bundle(cert, current)
        if self.ctx is not None:
            self.ctx.bundles.update(bundles)

        work: list[TargetOutcome] = []
        deploy_records: dict[str, dict[str, dict[str, Any]]] = {}
        for provider_name, items in per_provider.items():
            try:
                bindings = self.provider(provider_name).read_bindings([t for _, t in items])
            except Exception as exc:  # noqa: BLE001 - the provider's targets fail, others go on
                text = describe_error(exc)[1]
                log.error("%s: cannot read current bindings: %s", provider_name, text)
                bindings = {}
                for name, target in items:
                    result.targets.append(TargetOutcome(name, target, "cannot read binding",
                                                        action="failed", error=text))
                continue
            for name, target in items:
                bundle = bundles[name]
                binding = bindings.get(target, Binding(state="unknown"))
                if name not in deploy_records:  # one read per certificate, not per target
                    deploy_records[name] = self.store.read_deploy(name)
                last = deploy_records[name].get(target_key(target), {})
                decision = planner.plan_target(binding, serial=bundle.serial, fingerprint=bundle.fingerprint,
                                               last_deployed_fingerprint=last.get("fingerprint"),
                                               last_deployed_serial=last.get("serial"))
                reason = decision.reason
                if not decision.due and reason == planner.UP_TO_DATE and not (
                        last.get("fingerprint") == bundle.fingerprint and last.get("verified_at")):
                    # Bound but never verified (a crash between bind and verify, or someone
                    # else's bind of our chain): the API's word alone is not proof.
                    reason = NOT_VERIFIED
                outcome = TargetOutcome(name, target, reason, binding=binding)
                result.targets.append(outcome)
                if decision.due or reason in (planner.ROLLOUT_PENDING, NOT_VERIFIED):
                    work.append(outcome)
        if dry_run or not work:
            return

        # Bind everything first (quick API calls, a few at a time), then verify everything at
        # once: verification is mostly waiting for a rollout, so N targets cost about one
        # rollout, not N/threads of them.
        def attempt(outcome: TargetOutcome, step: Callable[[], None]) -> None:
            where = f"{outcome.target.provider} {outcome.target.name}"
            if self.stop.is_set():
                outcome.action, outcome.error = "skipped", "shutting down"
                return
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - one target never stops the others
                if self.stop.is_set():
                    # Interrupted by a shutdown, not failed: the next run verifies or rebinds it.
                    outcome.action, outcome.error = "skipped", "shutting down"
                    log.info("%s: abandoned, shutting down (%s)", where, describe_error(exc)[1],
                             extra={"certificate": outcome.certificate})
                    return
                outcome.action = "failed"
                outcome.error = describe_error(exc)[1]
                log.error("%s: %s", where, outcome.error, extra={"certificate": outcome.certificate})

        def bind(outcome: TargetOutcome) -> None:
            bundle = bundles[outcome.certificate]

            def step() -> None:
                log.info("binding serial %s to %s %s (%s)", bundle.serial, outcome.target.provider,
                         outcome.target.name, outcome.reason, extra={"certificate": outcome.certificate})
                self.provider(outcome.target.provider).bind(outcome.target, bundle)
                outcome.action = "bound"
            attempt(outcome, step)

        def verify(outcome: TargetOutcome) -> None:
            bundle = bundles[outcome.certificate]

            def step() -> None:
                deadline = _monotonic() + self.config.verify.timeout
                outcome.binding = self.provider(outcome.target.provider).verify(outcome.target, bundle, deadline)
                outcome.action = "verified"
                log.info("%s %s serves serial %s", outcome.target.provider, outcome.target.name, bundle.serial,
                         extra={"certificate": outcome.certificate})
            attempt(outcome, step)

        to_bind = [o for o in work if o.reason not in (planner.ROLLOUT_PENDING, NOT_VERIFIED)]
        if to_bind:
            with ThreadPoolExecutor(max_workers=min(BIND_WORKERS, len(to_bind)), thread_name_prefix="bind") as pool:
                list(pool.map(bind, to_bind))
        to_verify = [o for o in work if o.action in ("none", "bound")]
        if to_verify:
            with ThreadPoolExecutor(max_workers=min(VERIFY_WORKERS, len(to_verify)),
                                    thread_name_prefix="verify") as pool:
                list(pool.map(verify, to_verify))

    # -- bookkeeping -----------------------------------------------------------

    def _record(self, result: CycleResult) -> None:
        now = self.clock()
        cap = self.config.schedule.interval or 12 * 3600.0
        by_cert: dict[str, list[TargetOutcome]] = defaultdict(list)
        for t in result.targets:
            by_cert[t.certificate].append(t)
        for outcome in result.certificates:
            name = outcome.name
            try:
                runtime = self._pending_runtime.get(name) or self.store.read_runtime(name)
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
                    fs = planner.backoff_after_failure(prev, now, cap)
                    runtime.update(last_result="failed", last_error=outcome.error, failures=fs.failures,
                                   last_failure=rfc3339(fs.last_failure), next_attempt=rfc3339(fs.next_attempt))
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
                self.store.write_runtime(name, runtime)

                records = self.store.read_deploy(name)
                for t in by_cert[name]:
                    key = target_key(t.target)
                    rec = records.get(key, {"provider": t.target.provider, "target": t.target.name})
                    rec["last_checked"] = rfc3339(now)
                    b = t.binding
                    bundle = self.ctx.bundles.get(name) if self.ctx is not None else None
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
                self.store.write_deploy(name, records)
            except Exception as exc:  # noqa: BLE001 - bookkeeping must not hide the real result
                log.error("cannot record the result: %s", describe_error(exc)[1], extra={"certificate": name})
                result.errors.append(f"{name}: cannot record result")


def _monotonic() -> float:
    return time.monotonic()


def _provider_class(name: str):
    from providers.registry import get_provider
    return get_provider(name)


def _bundle(cert: CertificateConfig, current: StoredCertificate) -> CertificateBundle:
    from daemon.keys import certificate_info
    info = certificate_info(current.fullchain_pem)
    return CertificateBundle(name=cert.name, domains=tuple(info.sans), fullchain_pem=current.fullchain_pem,
                             key_pem=current.key_pem, serial=info.serial, fingerprint=info.fingerprint,
                             not_before=info.not_before, not_after=info.not_after,
                             issuer=info.issuer or "")
