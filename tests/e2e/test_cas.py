"""CAS as the certificate hub, end to end (the real CLI against Pebble and the sandbox):
a crash between upload and bind never uploads twice; a forced renewal leaves exactly one CAS
certificate of ours per certificate once the new one is verified, and never touches a
certificate someone uploaded by hand; status and --dry-run show the CAS side."""

from __future__ import annotations

import json
import time

from tests.e2e.helpers import WWW_CDN, assert_serves, run_ok, status_json
from tests.support.world import World, wait_for


def www_cdn_cert() -> dict:
    return World.cert("www", ["example.com", "*.example.com"], cdn=WWW_CDN)


def ours(world: World) -> list[dict]:
    return [c for c in world.sandbox.cas_certificates() if c["source"] == "cas"
            and c["cert_name"].startswith("alicertd-")]


def test_crash_after_upload_before_bind_then_rerun_uploads_once(world, tmp_path):
    config = world.write_config(tmp_path, [www_cdn_cert()])
    state = tmp_path / "state"
    # every bind takes 3 s: the kill lands after the upload and before any bind answered
    world.sandbox.set_faults("SetCdnDomainSSLCertificate", latency=3.0)
    since = time.time()
    proc = world.spawn(config, "--run-now", log_path=tmp_path / "killed.log")
    try:
        wait_for(lambda: proc.poll() is not None
                 or world.sandbox.calls(since=since, action="UploadUserCertificate"),
                 120, "UploadUserCertificate (or the end of the run)", step=0.005)
    finally:
        finished = proc.poll()
        proc.kill()
        proc.wait(timeout=10)
    assert finished is None, "the run ended before it could be killed"
    assert len(ours(world)) == 1
    world.sandbox.clear_faults()

    run_ok(world, config)
    assert len(ours(world)) == 1, ours(world)
    assert len(world.sandbox.calls(since=since, action="UploadUserCertificate")) == 1
    assert_serves(world, state, "www", WWW_CDN)
    [cas] = ours(world)
    assert sorted(cas["bound"]) == sorted(WWW_CDN)


def test_forced_renewal_leaves_one_cas_certificate_and_spares_a_hand_upload(world, tmp_path):
    from tests.e2e.helpers import foreign_certificate
    config = world.write_config(tmp_path, [www_cdn_cert()])
    state = tmp_path / "state"
    run_ok(world, config)
    [first] = ours(world)

    # someone uploads a certificate by hand and binds it to a domain alicertd does not manage
    chain, key, _ = foreign_certificate(["*.static.example.com"])
    world.sandbox.replace_cdn_binding("*.static.example.com", chain, key, cert_name="by-hand")
    hand = [c for c in world.sandbox.cas_certificates() if c["cert_name"] == "by-hand"]
    assert len(hand) == 1

    since = time.time()
    proc = run_ok(world, config, "--force", "www")
    assert "cas: deleted superseded CAS certificate" in proc.stdout, proc.stdout
    [second] = ours(world)
    assert second["cert_id"] != first["cert_id"] and sorted(second["bound"]) == sorted(WWW_CDN)
    assert [c["cert_id"] for c in world.sandbox.cas_certificates() if c["cert_name"] == "by-hand"] \
        == [hand[0]["cert_id"]]
    assert_serves(world, state, "www", WWW_CDN)
    deletes = world.sandbox.calls(since=since, action="DeleteUserCertificate")
    assert [c["params"]["CertId"] for c in deletes] == [first["cert_id"]]

    # status shows the CAS id per account
    [entry] = status_json(world, config)["certificates"]
    assert entry["cas"] == [{"account": "default", "cert_id": int(second["cert_id"]),
                             "region": "cn-hangzhou"}]
    text = world.cli(config, "status").stdout
    assert str(second["cert_id"]) in text

    # nothing due: a rerun uploads and deletes nothing
    since = time.time()
    run_ok(world, config)
    assert not world.sandbox.calls(since=since, action="UploadUserCertificate")
    assert not world.sandbox.calls(since=since, action="DeleteUserCertificate")


def test_deletion_refused_while_bound_is_a_warning_retried_next_cycle(world, tmp_path):
    config = world.write_config(tmp_path, [www_cdn_cert()])
    run_ok(world, config)
    [first] = ours(world)
    # someone binds our (soon superseded) upload to another domain by hand
    with world.sandbox.world.lock:
        cert = world.sandbox.world.certs_by_id[int(first["cert_id"])]
        world.sandbox.world.cdn[".static.example.com"].config.cert = cert

    proc = run_ok(world, config, "--force", "www")  # exit 0: a failed deletion is no failure
    assert "could not delete superseded" in proc.stdout
    assert len(ours(world)) == 2

    world.sandbox.replace_cdn_binding("*.static.example.com", None)
    proc = run_ok(world, config)
    assert "deleted superseded" in proc.stdout
    assert [c["cert_id"] for c in ours(world)] != [first["cert_id"]] and len(ours(world)) == 1


def test_dry_run_shows_planned_upload_and_deletion(world, tmp_path):
    config = world.write_config(tmp_path, [www_cdn_cert()])
    proc = world.cli(config, "--run-now", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "cas: would upload the new certificate of www to CAS (cn-hangzhou) of account default" \
        in proc.stdout, proc.stdout
    assert not ours(world)
    run_ok(world, config)
    state = tmp_path / "state"
    # a record of an older upload of ours (as a renewal leaves it) shows as a planned deletion
    path = state / "cas" / "certificates.json"
    data = json.loads(path.read_text())
    old = dict(data["certificates"][0], cert_id=1, fingerprint="0" * 64, serial="1")
    data["certificates"].append(old)
    path.write_text(json.dumps(data))
    proc = world.cli(config, "--run-now", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "cas: would delete superseded CAS certificate 1 " in proc.stdout, proc.stdout
