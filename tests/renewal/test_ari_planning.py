"""ARI in planning (#12 item 3, item 7's explanationURL, #10 item 5's "the CA could not be
read"): renewalInfo is asked whether or not a fixed ``renew_before_days`` is set, so a CA's
"renew now" wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from daemon.cycle import Cycle
from tests.renewal.helpers import ScriptedIssuer, config, store_with_certificate


def test_a_ca_renew_now_wins_over_a_fixed_window(tmp_path):
    cfg = config(tmp_path, acme={"renew_before_days": 30})
    store, _ = store_with_certificate(cfg, days=90)  # 90 days left: the fixed window is far away
    now = datetime.now(UTC)
    ca = ScriptedIssuer((now - timedelta(hours=1), now - timedelta(minutes=59), now + timedelta(hours=6),
                         "https://ca.test/incident-42"))

    result = Cycle(cfg, store, issuer_factory=ca.factory).run(dry_run=True)

    assert ca.asked == 1, "renewalInfo was not asked although renew_before_days is set"
    decision = result.certificates[0].decision
    assert decision.due and decision.reason == "ARI window", decision
    assert result.plan_ok


def test_a_normal_ari_window_keeps_a_fixed_window(tmp_path):
    cfg = config(tmp_path, acme={"renew_before_days": 30})
    store, bundle = store_with_certificate(cfg, days=90)
    start = bundle.not_after - timedelta(days=31)
    ca = ScriptedIssuer((start, start + timedelta(days=2), datetime.now(UTC) + timedelta(hours=6), None))

    result = Cycle(cfg, store, issuer_factory=ca.factory).run(dry_run=True)

    assert ca.asked == 1
    assert not result.certificates[0].decision.due


def test_the_explanation_url_is_logged_and_kept_for_status(tmp_path, caplog):
    cfg = config(tmp_path)
    store, _ = store_with_certificate(cfg, days=90)
    now = datetime.now(UTC)
    ca = ScriptedIssuer((now + timedelta(days=50), now + timedelta(days=52), now + timedelta(hours=6),
                         "https://ca.test/why"))

    with store.lock(5):
        Cycle(cfg, store, issuer_factory=ca.factory).run()

    assert "https://ca.test/why" in caplog.text
    assert store.read_runtime("www")["ari"]["explanation_url"] == "https://ca.test/why"


def test_a_dry_run_that_cannot_read_the_ca_cannot_make_its_plan(tmp_path):
    cfg = config(tmp_path)
    store, _ = store_with_certificate(cfg, days=90)
    ca = ScriptedIssuer(error=ConnectionError("CA unreachable"))

    result = Cycle(cfg, store, issuer_factory=ca.factory).run(dry_run=True)

    assert ca.asked == 1
    assert not result.plan_ok
    assert "unreachable" in (result.certificates[0].ca_error or "")


def test_renewal_info_is_not_asked_again_before_its_retry_after(tmp_path):
    cfg = config(tmp_path)
    store, _ = store_with_certificate(cfg, days=90)
    now = datetime.now(UTC)
    ca = ScriptedIssuer((now + timedelta(days=50), now + timedelta(days=52), now + timedelta(hours=6), None))
    for _ in range(3):
        with store.lock(5):
            Cycle(cfg, store, issuer_factory=ca.factory).run()
    assert ca.asked == 1


@pytest.mark.parametrize(("retry_after", "low", "high"), [
    (0, 60, 61), (None, 6 * 3600, 6 * 3600 + 1), (30 * 86400, 86400, 86401)])
def test_the_retry_after_of_renewal_info_is_clamped(tmp_path, retry_after, low, high):
    from daemon.acme.client import RenewalInfo
    from daemon.issuer import Issuer
    from daemon.state import StateStore

    class Client:
        def renewal_info(self, pem):
            now = datetime.now(UTC)
            return RenewalInfo(start=now, end=now + timedelta(days=1), retry_after=retry_after)

    cfg = config(tmp_path)
    issuer = Issuer(cfg, StateStore(cfg.state_dir))
    issuer._local.client = Client()  # noqa: SLF001 - this thread's ACME client
    before = datetime.now(UTC)
    _, _, retry, _ = issuer.renewal_info("pem")
    assert before + timedelta(seconds=low) <= retry <= datetime.now(UTC) + timedelta(seconds=high)
