"""Malformed answers from the cloud and from the CA (the config corpus is tests/config/).

Each bad answer must give one clear error line (no traceback anywhere), leave nothing
half-written in the state dir, and not stop the healthy certificate next to it: the run exits 1
with the healthy certificate issued and deployed.
"""

from __future__ import annotations

import pytest

from tests.reliability.fake_ca import FakeCA
from tests.reliability.helpers import (
    GW_ONLY,
    assert_apigateway_serves,
    assert_no_traceback,
    assert_serves,
    assert_state_parses,
    error_lines,
    summary_row,
)
from tests.support.world import World

CDN_CERT = World.cert("cdn", ["cdn.example.com"], cdn=["cdn.example.com"])


# --------------------------------------------------------------------------- the sandbox


@pytest.mark.parametrize(("kind", "action", "expected"), [
    ("malformed", "SetCdnDomainSSLCertificate", "with a body that is not JSON"),
    ("error_200", "SetCdnDomainSSLCertificate", "InternalError (HTTP 200)"),
    ("malformed", "DescribeDomainCertificateInfo", "with a body that is not JSON"),
    ("error_200", "DescribeDomainCertificateInfo", "InternalError (HTTP 200)"),
], ids=["malformed-write", "error200-write", "malformed-read", "error200-read"])
def test_sandbox_bad_answers(world, tmp_path, transcripts, kind, action, expected):
    """Every ``action`` call answers 200 with HTML (``malformed``) or with a JSON ``Code``
    (``error_200``). Only CDN uses these actions; the API Gateway certificate must not care."""
    config = world.write_config(tmp_path, [CDN_CERT, GW_ONLY], verify_timeout="6s")
    state = tmp_path / "state"
    world.sandbox.set_faults(action, **{kind: 1.0})

    proc = transcripts.cli(world, config, "--run-now")

    assert_no_traceback(proc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # The failure: one ERROR line naming the target, the action and what was wrong with it.
    errors = [line for line in error_lines(proc.stderr) if "cdn.example.com" in line]
    assert len(errors) == 1, f"expected one error line for cdn.example.com, got {errors}"
    assert action in errors[0] and expected in errors[0], errors[0]
    faulted = world.sandbox.calls(action=action)
    assert faulted and all(c["fault"] == kind for c in faulted), "the fault did not apply"
    # The certificate itself was issued; only its deployment failed. The healthy one is fine.
    assert "issued" in summary_row(proc.stdout, "cdn")
    assert "issued" in summary_row(proc.stdout, "gw")
    assert_apigateway_serves(world, state, "gw")
    if action.startswith("Set"):
        assert world.sandbox.cdn_binding("cdn.example.com")["cert"] is None
    assert world.txt_records() == []
    assert_state_parses(state)
    deploy = (state / "deploy" / "cdn.json").read_text()
    assert '"state": "error"' in deploy and action in deploy, deploy

    # Once the API behaves again, the next run finishes the job.
    world.sandbox.clear_faults()
    again = transcripts.cli(world, config, "--run-now")
    assert again.returncode == 0, again.stdout + again.stderr
    assert_serves(world, state, "cdn", ["cdn.example.com"])


# --------------------------------------------------------------------------- the CA


@pytest.fixture
def fake_ca():
    with FakeCA() as ca:
        yield ca


@pytest.mark.parametrize(("path", "expected"), [
    ("/dir-html", "expected a JSON object, got '<html>"),
    ("/dir-missing", "the directory has no 'newOrder' URL"),
    ("/dir-types", "the directory has no 'newNonce' URL"),
], ids=["html", "missing-fields", "wrong-types"])
def test_ca_directory_garbage(world, fake_ca, tmp_path, transcripts, path, expected):
    """The directory itself is garbage: no certificate can proceed, each fails with one line
    naming the directory URL, and nothing is contacted at Alibaba Cloud beyond reading."""
    config = world.write_config(tmp_path, [CDN_CERT, GW_ONLY],
                                extra={"acme": {"directory": fake_ca.url(path)}})
    state = tmp_path / "state"

    proc = transcripts.cli(world, config, "--run-now")

    assert_no_traceback(proc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for name in ("cdn", "gw"):
        row = summary_row(proc.stdout, name)
        assert "failed" in row and "not an ACME directory" in row and expected in row, row
        assert fake_ca.url(path) in row, row
        lines = [line for line in error_lines(proc.stderr) if f"[{name}]" in line]
        assert len(lines) == 1 and expected in lines[0], lines
    assert not any(c["action"].startswith(("Add", "Set")) for c in world.sandbox.calls())
    assert not (state / "certificates" / "cdn").exists()
    assert_state_parses(state)


def test_ca_bad_orders_and_a_chain_for_another_key(world, fake_ca, tmp_path, transcripts):
    """One CA, four certificates: newOrder answers HTML for one, fields of the wrong types for
    another, the third gets a chain that certifies some other key; the fourth is healthy."""
    good = World.cert("good", ["cdn.example.com"], cdn=["cdn.example.com"])
    garbage = World.cert("garbage", ["garbage.example.com"])
    wrongtype = World.cert("wrongtype", ["wrongtype.example.com"])
    otherkey = World.cert("otherkey", ["otherkey.example.com"], cdn=["img.example.com"])
    config = world.write_config(tmp_path, [good, garbage, wrongtype, otherkey],
                                extra={"acme": {"directory": fake_ca.url("/dir")}})
    state = tmp_path / "state"

    proc = transcripts.cli(world, config, "--run-now")

    assert_no_traceback(proc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    expected = {
        "garbage": "expected a JSON object, got '<html>",
        "wrongtype": "malformed order object",
        "otherkey": "the issued certificate does not certify our key",
    }
    for name, text in expected.items():
        row = summary_row(proc.stdout, name)
        assert "failed" in row and text in row, row
        lines = [line for line in error_lines(proc.stderr) if f"[{name}]" in line]
        assert len(lines) == 1 and text in lines[0], lines
        assert not (state / "certificates" / name).exists(), f"{name} was stored"
        assert not (state / "archive" / name).exists() or not any((state / "archive" / name).iterdir())
    # The chain for another key was downloaded, and never reached a deploy target.
    assert any(p.startswith("/cert/") for _, p in fake_ca.requests)
    assert world.sandbox.cdn_binding("img.example.com")["cert"] is None
    assert "issued" in summary_row(proc.stdout, "good")
    assert_serves(world, state, "good", ["cdn.example.com"])
    assert_state_parses(state)

    # The next plain run respects the failures' backoff (no new order for them) and still
    # reports failure: three certificates have no certificate at all, and two of them have no
    # target that could fail instead (this exited 0, "cycle succeeded", before the fix).
    orders = sum(1 for _, p in fake_ca.requests if p == "/order")
    again = transcripts.cli(world, config, "--run-now")
    assert again.returncode == 1, again.stdout + again.stderr
    for name in expected:
        assert "backing off" in summary_row(again.stdout, name)
    assert sum(1 for _, p in fake_ca.requests if p == "/order") == orders
