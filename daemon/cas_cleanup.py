"""After deploy and verify: delete the CAS certificates alicertd uploaded that nothing needs.

The contract ("Alibaba Cloud behaviour"): a certificate alicertd uploaded is deleted from CAS
once a newer certificate of the same ``[[certificate]]`` is verified on every target and
nothing is bound to the old one any more; a certificate alicertd did not upload is never
deleted. So, per configured certificate whose current bundle is verified on every one of its
targets this cycle, every record of ours that holds another certificate (or the same one in a
CAS region the account no longer uses) is deleted through the hub, which refuses foreign ids.

CAS itself refuses to delete a certificate a cloud product still uses (someone bound our old
certificate by hand elsewhere). Such a failure, or a missing permission, is a warning: the
record stays and the next cycle tries again. It never fails the cycle.

``--dry-run`` only says what would be uploaded (a due target of a provider that binds by CAS
id whose certificate CAS does not hold yet) and what would be deleted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from daemon import planner
from daemon.errors import describe_error
from daemon.outcomes import CycleResult, TargetOutcome

if TYPE_CHECKING:
    from daemon.cycle import Cycle

log = logging.getLogger("alicertd")

#: Deploy providers that bind CAS certificates by id (a provider class may also say so with
#: ``uses_cas = True``).
CAS_PROVIDERS = frozenset({"cdn", "dcdn", "esa", "oss", "alb", "nlb"})


def run(cycle: Cycle, result: CycleResult, *, dry_run: bool) -> None:
    """The cycle's CAS step (never raises)."""
    try:
        _run(cycle, result, dry_run=dry_run)
    except Exception as exc:  # noqa: BLE001 - housekeeping: a warning, never a failed cycle
        log.warning("CAS cleanup skipped: %s", describe_error(exc)[1])


def _run(cycle: Cycle, result: CycleResult, *, dry_run: bool) -> None:
    ctx = cycle.ctx
    if ctx is None:
        return
    if dry_run:
        _plan_uploads(cycle, result)
    records = _records(ctx)
    if not records:
        return
    from providers.cas import cas_hub
    hub = cas_hub(ctx)
    for cert in cycle.config.certificates:
        bundle = ctx.bundles.get(cert.name)
        mine = [r for r in records if r.get("certificate") == cert.name]
        if bundle is None or not mine:
            continue
        outcomes = [t for t in result.targets if t.certificate == cert.name]
        if not all(_verified(t) for t in outcomes):
            continue
        for record in mine:
            account = str(record.get("account") or "default")
            if record.get("fingerprint") == bundle.fingerprint and record.get("region") == hub.region(account):
                continue  # the current one
            what = (f"CAS certificate {record.get('cert_id')} ({record.get('name')}, serial "
                    f"{record.get('serial')}) of {cert.name} in account {account}")
            if dry_run:
                _note(result, f"would delete superseded {what}")
                continue
            try:
                hub.delete(int(record["cert_id"]), account)
                _note(result, f"deleted superseded {what}")
            except Exception as exc:  # noqa: BLE001 - retried next cycle
                text = describe_error(exc)[1]
                log.warning("could not delete superseded %s (retried next cycle): %s", what, text,
                            extra={"certificate": cert.name})
                _note(result, f"could not delete superseded {what} yet: {text}")


def _records(ctx) -> list[dict[str, Any]]:
    store = ctx.cas_records
    return store.entries() if store is not None else []


def _verified(t: TargetOutcome) -> bool:
    """The target serves the current certificate, verified (this cycle, or recorded so by an
    earlier one: ``up to date`` requires a recorded verification)."""
    if t.error:
        return False
    return t.action == "verified" or (t.action == "none" and t.reason == planner.UP_TO_DATE)


def _plan_uploads(cycle: Cycle, result: CycleResult) -> None:
    """Dry run: per certificate and account that a CAS-based target will need, whether an
    upload is planned (a new certificate, or the current one not in that CAS yet)."""
    from providers.cas import cas_hub
    from providers.registry import get_provider
    ctx = cycle.ctx
    due = {c.name for c in result.certificates if c.decision.due}
    seen: set[tuple[str, str]] = set()
    for t in result.targets:
        cls = get_provider(t.target.provider)
        if not (getattr(cls, "uses_cas", False) or t.target.provider in CAS_PROVIDERS):
            continue
        account = getattr(t.target.settings, "account", None) or "default"
        if (t.certificate, account) in seen:
            continue
        bundle = ctx.bundles.get(t.certificate)
        hub = cas_hub(ctx)
        if t.certificate in due or bundle is None:
            seen.add((t.certificate, account))
            _note(result, f"would upload the new certificate of {t.certificate} to CAS "
                          f"({hub.region(account)}) of account {account}")
            continue
        if t.action == "failed" or t.reason in (planner.UP_TO_DATE, planner.ROLLOUT_PENDING):
            continue
        seen.add((t.certificate, account))
        try:
            found = hub.lookup(bundle, account)
        except Exception as exc:  # noqa: BLE001 - the plan says so instead
            _note(result, f"cannot tell whether CAS of account {account} holds {t.certificate}: "
                          f"{describe_error(exc)[1]}")
            continue
        if found is None:
            _note(result, f"would upload {t.certificate} (serial {bundle.serial}) to CAS "
                          f"({hub.region(account)}) of account {account}")
        else:
            _note(result, f"{t.certificate} is in CAS ({found.region}) of account {account} as "
                          f"{found.cert_id}: bind by id")


def _note(result: CycleResult, text: str) -> None:
    notes = getattr(result, "notes", None)
    if notes is not None:
        notes.append(text)
    log.info("%s", text)
