"""A renewal window set through Pebble's management API (``/set-renewal-info/``, Pebble
2.10's ``SetRenewalInfo``): the CA's "renew now" wins over a fixed ``renew_before_days``
(#12 item 3), the chosen renewal time and the CA's explanationURL show in ``status``
(items 4 and 7). Through the real CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.e2e.helpers import cert_status, pebble_issued
from tests.support.world import World

pytestmark = pytest.mark.pebble
EXPLANATION = "https://ca.test/incidents/42"


def set_renewal_info(world: World, fullchain: str, start: datetime, end: datetime) -> None:
    leaf = fullchain.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    body = {"suggestedWindow": {"start": start.isoformat().replace("+00:00", "Z"),
                                "end": end.isoformat().replace("+00:00", "Z")},
            "explanationURL": EXPLANATION}
    resp = requests.post(f"{world.pebble.management_url}/set-renewal-info/", verify=world.pebble.ca_bundle,
                         json={"Certificate": leaf, "ARIResponse": json.dumps(body)}, timeout=10)
    resp.raise_for_status()


def test_the_cas_window_wins_over_a_fixed_one_and_is_explained(world, tmp_path):
    config = world.write_config(tmp_path, [world.cert("www", ["example.com"])],
                                extra={"acme": {"renew_before_days": 30}})
    chain = tmp_path / "state" / "certificates" / "www" / "fullchain.pem"
    assert world.cli(config, "--run-now").returncode == 0
    first = World.chain_serial(tmp_path / "state", "www")
    now = datetime.now(UTC)

    # A window well before the fixed one (90-day certificate, fixed: 30 days before expiry).
    set_renewal_info(world, chain.read_text(), now + timedelta(days=10), now + timedelta(days=11))
    proc = world.cli(config, "--run-now")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert EXPLANATION in proc.stderr  # logged once, when first seen
    status = cert_status(world, config, "www")
    assert status["serial"] == first and status["ari_explanation_url"] == EXPLANATION
    assert "ARI" in status["next_renewal_reason"]
    assert now + timedelta(days=10) <= datetime.fromisoformat(status["next_renewal"].replace("Z", "+00:00")) \
        <= now + timedelta(days=11, seconds=5)

    # "Renew now": a window in the past, as a CA publishes before a mass revocation. The
    # cached answer is kept until its Retry-After, so drop it the way a day passing would.
    set_renewal_info(world, chain.read_text(), now - timedelta(hours=2), now - timedelta(hours=1))
    runtime_path = tmp_path / "state" / "runtime" / "www.json"
    runtime = json.loads(runtime_path.read_text())
    runtime["ari"]["retry_after"] = (now - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    runtime_path.write_text(json.dumps(runtime))
    proc = world.cli(config, "--run-now")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    second = World.chain_serial(tmp_path / "state", "www")
    assert second != first and len(pebble_issued(world)) == 2
    assert "issuing (ARI window)" in proc.stderr
