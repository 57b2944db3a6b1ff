"""Steps 4 and 5 of a cycle: read what every target serves, then bind and verify.

Reads are batched per provider (pages, not one call per domain). Binding comes first for all
targets (quick API calls, a few at a time), then verification for all at once: verifying is
mostly waiting for a rollout, so N targets cost about one rollout, not N/threads of them.
``--dry-run`` stops after the reads.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from daemon import planner
from daemon.config import CertificateConfig
from daemon.errors import describe_error
from daemon.outcomes import NOT_VERIFIED, CycleResult, TargetOutcome, target_key
from daemon.state import StoredCertificate
from providers.base import Binding, CertificateBundle, Target

if TYPE_CHECKING:
    from daemon.cycle import Cycle

log = logging.getLogger("alicertd")

BIND_WORKERS = 8  # concurrent bind calls (Alibaba's per-action QPS limits are 10-30/s)
VERIFY_WORKERS = 64  # concurrent rollout waits (threads that mostly sleep between polls)


def deploy(cycle: Cycle, result: CycleResult, stored: dict[str, StoredCertificate | None], *,
            dry_run: bool) -> None:
    outcomes = {o.name: o for o in result.certificates}
    bundles: dict[str, CertificateBundle] = {}
    per_provider: dict[str, list[tuple[str, Target]]] = defaultdict(list)
    for cert in cycle.config.certificates:
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
    if cycle.ctx is not None:
        cycle.ctx.bundles.update(bundles)

    work: list[TargetOutcome] = []
    deploy_records: dict[str, dict[str, dict[str, Any]]] = {}
    unreadable: dict[str, str] = {}  # certificate -> why its deploy record cannot be read
    for provider_name, items in per_provider.items():
        try:
            bindings = cycle.provider(provider_name).read_bindings([t for _, t in items])
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
                try:
                    deploy_records[name] = cycle.store.read_deploy(name)
                except Exception as exc:  # noqa: BLE001 - a corrupt record fails its certificate only
                    unreadable[name] = describe_error(exc)[1]
                    deploy_records[name] = {}
                    log.error("cannot read the deploy record: %s", unreadable[name], extra={"certificate": name})
            if name in unreadable:
                result.targets.append(TargetOutcome(name, target, "cannot read deploy record", action="failed",
                                                    error=unreadable[name], binding=binding))
                continue
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
        if cycle.stop.is_set():
            outcome.action, outcome.error = "skipped", "shutting down"
            return
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - one target never stops the others
            if cycle.stop.is_set():
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
            cycle.provider(outcome.target.provider).bind(outcome.target, bundle)
            outcome.action = "bound"
        attempt(outcome, step)

    def verify(outcome: TargetOutcome) -> None:
        bundle = bundles[outcome.certificate]

        def step() -> None:
            deadline = _monotonic() + cycle.config.verify.timeout
            outcome.binding = cycle.provider(outcome.target.provider).verify(outcome.target, bundle, deadline)
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
