"""The CAS cleanup decisions (daemon/cas_cleanup.py) as a table: which records are deleted,
when nothing is, and that a failed deletion is a note, not an exception."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from types import SimpleNamespace

from daemon import cas_cleanup, planner
from daemon.outcomes import CycleResult, TargetOutcome
from providers.base import Binding, ProviderContext, ProviderError, Target
from tests.providers.certs import make_bundle
from tests.providers.conftest import make_config


class FakeHub:
    def __init__(self, fail: set[int] = frozenset()):
        self.deleted: list[tuple[int, str]] = []
        self.fail = fail

    def region(self, account="default"):
        return {"media": "ap-southeast-1"}.get(account, "cn-hangzhou")

    def delete(self, cert_id, account="default"):
        if cert_id in self.fail:
            raise ProviderError(f"cas: certificate {cert_id} is still used by CDN x.example.com")
        self.deleted.append((cert_id, account))


class Records:
    def __init__(self, items):
        self.items = items

    def entries(self):
        return [dict(i) for i in self.items]


def setup(tmp_path, records, targets, *, hub=None, due=False):
    www = make_bundle("www", ["a.example.com"])
    cfg = make_config(tmp_path)
    cfg = dataclasses.replace(cfg, certificates=(SimpleNamespace(name="www"), SimpleNamespace(name="api")))
    ctx = ProviderContext(config=cfg, journal=None, log=logging.getLogger("t"), cas_records=Records(records))
    ctx.bundles["www"] = www
    hub = hub or FakeHub()
    ctx._resources["cas_hub"] = hub
    result = CycleResult(started=datetime.now(UTC))
    result.certificates = [SimpleNamespace(name="www", decision=SimpleNamespace(due=due))]
    result.targets = targets
    return SimpleNamespace(ctx=ctx, config=cfg), result, hub, www


def rec(cert_id, fingerprint, *, certificate="www", account="default", region="cn-hangzhou"):
    return {"cert_id": cert_id, "fingerprint": fingerprint, "certificate": certificate,
            "account": account, "region": region, "name": f"alicertd-{certificate}-x", "serial": "1"}


def target(action="verified", reason=planner.SERVES_OLDER, error=None):
    return TargetOutcome("www", Target("cdn", "a.example.com", None, "a.example.com"), reason,
                         action=action, error=error, binding=Binding("ok"))


def test_superseded_ours_are_deleted_once_every_target_is_verified(tmp_path):
    cycle, result, hub, www = setup(tmp_path, [], [])
    records = [rec(1, www.fingerprint),                       # the current one: kept
               rec(2, "0" * 64),                               # superseded: deleted
               rec(3, www.fingerprint, region="ap-southeast-1"),  # a CAS region no longer used
               rec(4, "1" * 64, certificate="api"),            # another certificate: not its turn
               rec(5, www.fingerprint, account="media", region="ap-southeast-1")]  # current there
    cycle.ctx.cas_records = Records(records)
    result.targets = [target(), target(action="none", reason=planner.UP_TO_DATE)]
    cas_cleanup.run(cycle, result, dry_run=False)
    assert hub.deleted == [(2, "default"), (3, "default")]
    assert len([n for n in result.notes if n.startswith("deleted superseded")]) == 2


def test_nothing_is_deleted_while_a_target_is_not_verified(tmp_path):
    for bad in (target(action="failed", error="boom"), target(action="bound"),
                target(action="skipped", reason="shutting down")):
        cycle, result, hub, _ = setup(tmp_path, [rec(2, "0" * 64)], [target(), bad])
        cas_cleanup.run(cycle, result, dry_run=False)
        assert hub.deleted == [], bad


def test_a_refused_deletion_is_a_note_and_the_cycle_goes_on(tmp_path):
    hub = FakeHub(fail={2})
    cycle, result, hub, _ = setup(tmp_path, [rec(2, "0" * 64), rec(6, "2" * 64)], [target()], hub=hub)
    cas_cleanup.run(cycle, result, dry_run=False)
    assert hub.deleted == [(6, "default")]
    assert any(n.startswith("could not delete superseded CAS certificate 2") for n in result.notes)
    assert result.errors == []


def test_dry_run_only_says_what_it_would_delete(tmp_path):
    cycle, result, hub, _ = setup(tmp_path, [rec(2, "0" * 64)],
                                  [target(action="none", reason=planner.UP_TO_DATE)])
    cas_cleanup.run(cycle, result, dry_run=True)
    assert hub.deleted == []
    assert [n for n in result.notes if "would delete" in n] == [
        "would delete superseded CAS certificate 2 (alicertd-www-x, serial 1) of www in account default"]
