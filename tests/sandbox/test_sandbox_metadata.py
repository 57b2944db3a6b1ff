"""Instance metadata in the sandbox: normal, hardened (IMDSv2 tokens required) and legacy modes."""

from __future__ import annotations

import requests

ROLE_PATH = "/latest/meta-data/ram/security-credentials/alicertd-role"
TTL = "X-aliyun-ecs-metadata-token-ttl-seconds"
TOKEN = "X-aliyun-ecs-metadata-token"


def _token(sb, ttl="21600"):
    return requests.put(sb.metadata_url + "/latest/api/token", headers={TTL: ttl}, timeout=5)


def _get(sb, token=None):
    headers = {TOKEN: token} if token is not None else {}
    return requests.get(sb.metadata_url + ROLE_PATH, headers=headers, timeout=5)


def test_normal_mode_serves_plain_gets_and_token_gets(sb):
    assert sb.settings()["metadata_mode"] == "normal"
    assert _get(sb).json()["Code"] == "Success"
    tok = _token(sb)
    assert tok.status_code == 200 and tok.text
    assert _get(sb, tok.text).json()["Code"] == "Success"
    assert _get(sb, "not-a-token").status_code == 401  # a token that is sent is checked


def test_hardened_mode_refuses_plain_gets(sb):
    sb.set_metadata_mode("hardened")
    assert _get(sb).status_code == 403
    listing = requests.get(sb.metadata_url + "/latest/meta-data/ram/security-credentials/",
                           timeout=5)
    assert listing.status_code == 403
    tok = _token(sb).text
    assert _get(sb, tok).json()["AccessKeyId"].startswith("STS.")
    calls = [(c["action"], c["method"], c["status"]) for c in sb.calls() if c["product"] == "Metadata"]
    assert ("MetadataToken", "PUT", 200) in calls and ("Metadata", "GET", 403) in calls


def test_token_ttl_is_checked_and_tokens_expire(sb):
    sb.set_metadata_mode("hardened")
    for bad in ("0", "21601", "abc", ""):
        assert _token(sb, bad).status_code == 400
    tok = _token(sb, "1").text
    with sb.world.lock:  # age the token past its TTL instead of waiting for it
        sb.world.metadata_tokens[tok] -= 2
    assert _get(sb, tok).status_code == 401
    assert requests.get(sb.metadata_url + "/latest/api/token", timeout=5).status_code == 405


def test_legacy_mode_has_no_token_endpoint(sb):
    sb.set_metadata_mode("legacy")
    assert _token(sb).status_code == 404
    assert _get(sb).json()["Code"] == "Success"


def test_mode_via_admin_and_fixture(sb):
    r = requests.post(sb.api_url + "/_admin/metadata-mode", json={"mode": "hardened"}, timeout=5)
    assert r.status_code == 200 and r.json()["metadata_mode"] == "hardened"
    assert requests.post(sb.api_url + "/_admin/metadata-mode", json={"mode": "strict"},
                         timeout=5).status_code == 400
    from sandbox.fixture import FixtureError, build_world
    assert build_world({"settings": {"metadata_mode": "hardened"}}).settings.metadata_mode == "hardened"
    try:
        build_world({"settings": {"metadata_mode": "v2"}})
    except FixtureError as exc:
        assert "settings.metadata_mode" in str(exc)
    else:
        raise AssertionError("a bad metadata_mode was accepted")
