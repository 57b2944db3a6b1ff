"""Three Alibaba Cloud accounts end to end (issue #16), the real CLI against Pebble and the
sandbox's three-account world (sandbox/fixtures/accounts.toml):

- A holds the zone example.com; alicertd runs on an ECS instance of A with its instance role
  (hardened metadata: tokens required), no AccessKey stored;
- B holds the CDN domains, reached by STS AssumeRole into B's alicertd-deploy role, which
  trusts A's instance role;
- C holds the zone example.org, reached with an AccessKey of C.

Every record and binding is written only in its own account; a second run writes nothing.
(Tokens expiring inside one run: tests/providers/test_aliyun_accounts_sandbox.py.)"""

from __future__ import annotations

import time
import tomllib

import pytest

from sandbox.fixture import demo_fixture_path
from tests.e2e.helpers import WWW_CDN, assert_serves, write_calls
from tests.support.pebble import ensure_pebble
from tests.support.world import World, dump_toml

A, B, C = "1000000000000001", "2000000000000002", "3000000000000003"
C_KEY, C_SECRET = "LTAIaccountc000000003", "sandbox-account-c-secret-not-real"
DEPLOY_ARN = f"acs:ram::{B}:role/alicertd-deploy"


@pytest.fixture
def accounts_world():
    ensure_pebble()
    data = tomllib.loads((demo_fixture_path().parent / "accounts.toml").read_text())
    # World wants a top-level key to hand to configs; this one is A's operator key, which the
    # configs below never use (A is reached through the instance role only).
    data["access_key"] = [{"id": "LTAIaccounta000000001", "secret": "unused-operator-secret",
                           "permissions": ["*"]}]
    data["settings"]["metadata_mode"] = "hardened"
    with World(data) as w:
        yield w


def _config(world: World, tmp_path):
    sb = world.sandbox
    data = world.config_data(tmp_path / "state", [
        World.cert("www", ["example.com", "*.example.com"]) | {
            "deploy": [{"provider": "cdn", "domains": WWW_CDN, "account": "b"}]},
        World.cert("org", ["example.org"]),
    ])
    api = sb.api_url
    data["aliyun"] = {
        "ram_role": "alicertd-role", "metadata_endpoint": sb.metadata_url, "region": "cn-hangzhou",
        "endpoints": {"alidns": api, "cdn": api, "cas": api, "sts": api},
        "accounts": {"b": {"ram_role_arn": DEPLOY_ARN, "source_account": "default"},
                     "c": {"access_key_id": C_KEY, "access_key_secret": "${C_SECRET}"}},
    }
    data["dns"]["accounts"] = ["default", "c"]
    path = tmp_path / "alicertd.toml"
    path.write_text(dump_toml(data))
    return path


def _account_of(world: World, access_key_id: str) -> str:
    return world.sandbox.world.account_for_key(access_key_id).settings.account_id


def test_three_accounts_issue_deploy_and_second_run_writes_nothing(accounts_world, tmp_path):
    world = accounts_world
    config = _config(world, tmp_path)
    env = {"C_SECRET": C_SECRET}
    check = world.cli(config, "check-config", env=env)
    assert check.returncode == 0, check.stderr

    since = time.time()
    proc = world.cli(config, "--run-now", env=env)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    state = tmp_path / "state"
    assert_serves(world, state, "www", WWW_CDN)
    assert World.chain_serial(state, "org")

    writes = write_calls(world, since)
    where = {}
    for c in writes:
        where.setdefault(c["action"], set()).add(_account_of(world, c["access_key_id"]))
    assert where["AddDomainRecord"] == {A, C} and where["DeleteDomainRecord"] == {A, C}
    assert where["UploadUserCertificate"] == {B}
    assert where["SetCdnDomainSSLCertificate"] == {B}
    added = {(c["params"]["DomainName"], _account_of(world, c["access_key_id"]))
             for c in writes if c["action"] == "AddDomainRecord"}
    assert added == {("example.com", A), ("example.org", C)}
    # A's calls used STS keys from the instance role; B's from AssumeRole; C's its own key
    assert {c["access_key_id"][:4] for c in writes if _account_of(world, c["access_key_id"]) == A} == {"STS."}
    assert {c["access_key_id"] for c in writes if _account_of(world, c["access_key_id"]) == C} == {C_KEY}
    assumed = world.sandbox.calls(since=since, action="AssumeRole")
    assert assumed and {c["params"]["RoleArn"] for c in assumed} == {DEPLOY_ARN}
    assert len(assumed) == 1, "one AssumeRole per run: the assumed credentials are shared"
    tokens = [c for c in world.sandbox.calls(since=since) if c["action"] == "MetadataToken"]
    assert tokens, "hardened metadata: the instance role was read with a token"
    for uid in (A, B, C):
        w = world.sandbox.world.accounts[uid]
        with w.lock:
            txt = [r for z in w.zones.values() for r in z.current.values() if r.type == "TXT"
                   and r.rr.startswith("_acme-challenge")]
            certs = list(w.certs_by_id.values())
        assert txt == [], f"challenge records left in {uid}"
        assert bool(certs) == (uid == B), f"CAS certificates in {uid}: {certs}"

    since = time.time()
    proc = world.cli(config, "--run-now", env=env)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert write_calls(world, since) == []


def test_an_untrusted_role_fails_only_its_accounts_targets(accounts_world, tmp_path):
    world = accounts_world
    b_world = world.sandbox.world.accounts[B]
    with b_world.lock:
        b_world.roles["alicertd-deploy"].trust = ()  # B no longer trusts A's instance role
    config = _config(world, tmp_path)
    proc = world.cli(config, "--run-now", env={"C_SECRET": C_SECRET})
    assert proc.returncode == 1, f"{proc.stdout}\n{proc.stderr}"
    out = proc.stdout + proc.stderr
    assert f"account b: cannot assume role {DEPLOY_ARN}" in out and "NoPermission" in out
    assert C_SECRET not in out
    state = tmp_path / "state"
    assert World.chain_serial(state, "org"), "account C's certificate still issued"
    assert World.chain_serial(state, "www"), "the certificate is issued; only its B target failed"
    assert not [c for c in world.sandbox.calls() if c["action"] == "SetCdnDomainSSLCertificate"]
