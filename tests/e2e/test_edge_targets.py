"""DCDN, ESA and OSS end to end (the real CLI against Pebble and the sandbox's demo targets):
issue, deploy to one target of each kind, verify by handshake; a second run writes nothing;
a forced renewal moves every target, and the ESA site (quota two, one slot taken by a foreign
certificate) is renewed in place with the foreign certificate untouched."""

from __future__ import annotations

import json
import time

from sandbox.certs import validate_pair
from sandbox.products.esa import EsaCert
from sandbox.state import StoredCert
from tests.e2e.helpers import assert_serves, run_ok
from tests.providers.certs import make_bundle
from tests.support.world import World

DOMAINS = ["dcdn.example.com", "www.example.net", "files.example.com"]
WRITES = {"SetDcdnDomainSSLCertificate", "SetCertificate", "DeleteCertificate", "PutCname",
          "UploadUserCertificate"}
SITE = 7000000001


def edge_cert() -> dict:
    return World.cert("edge", DOMAINS, deploy=[
        {"provider": "dcdn", "domains": ["dcdn.example.com"]},
        {"provider": "esa", "site": "example.net"},
        {"provider": "oss", "bucket": "demo-assets", "domains": ["files.example.com"]},
    ])


def config_for(world: World, tmp_path):
    api = world.sandbox.api_url
    endpoints = {p: api for p in ("alidns", "cdn", "apigateway", "cas", "dcdn", "esa", "oss")}
    return world.write_config(tmp_path, [edge_cert()], extra={"aliyun": {"endpoints": endpoints}})


def add_foreign_to_site(world: World) -> str:
    other = make_bundle("console", ["shop.example.net"])
    w = world.sandbox.world
    with w.lock:
        cas = StoredCert(cert_id=w.new_cert_id(), name="console-upload", chain_pem=other.fullchain_pem,
                         key_pem=other.key_pem, info=validate_pair(other.fullchain_pem, other.key_pem),
                         created=time.time())
        w.certs_by_id[cas.cert_id] = cas
        w.esa_sites[SITE].certs["foreign"] = EsaCert("foreign", cas, cas.cert_id, "cn-hangzhou",
                                                     time.time(), time.time() - 60)
    return "foreign"


def test_one_target_of_each_kind(world, tmp_path):
    config = config_for(world, tmp_path)
    state = tmp_path / "state"
    add_foreign_to_site(world)
    run_ok(world, config)
    first = assert_serves(world, state, "edge", DOMAINS)

    since = time.time()
    run_ok(world, config)
    assert [e["action"] for e in world.sandbox.calls(since=since) if e["action"] in WRITES] == []
    dry = world.cli(config, "--run-now", "--dry-run", "--force", "edge")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert [e["action"] for e in world.sandbox.calls(since=since) if e["action"] in WRITES] == []
    status = world.cli(config, "status", "--json")
    targets = {t["target"]: t["state"] for c in json.loads(status.stdout)["certificates"]
               for t in c["targets"]}
    assert set(targets) == {"dcdn.example.com", "example.net", "cn-hangzhou/demo-assets/files.example.com"}

    run_ok(world, config, "--force", "edge")
    second = assert_serves(world, state, "edge", DOMAINS)
    assert second != first
    site = world.sandbox.world.esa_sites[SITE]
    assert sorted(site.certs) == sorted(["foreign", next(i for i in site.certs if i != "foreign")])
    assert len(site.certs) == 2  # renewed in place: the quota of two was never exceeded
    assert world.sandbox.calls(since=since, action="DeleteCertificate") == []
