"""ALB, NLB and CLB end to end (the real CLI against Pebble and the sandbox's demo listeners):
issue, deploy to one listener of each kind, verify by handshake; a second run writes nothing;
a forced renewal moves every listener and leaves one CLB store entry of ours."""

from __future__ import annotations

import time

from sandbox.products import slb as sandbox_slb
from tests.e2e.helpers import assert_serves, run_ok
from tests.support.world import World

DOMAINS = ["shop.example.com", "tls.example.com", "legacy.example.com"]
LB_WRITES = {"UpdateListenerAttribute", "AssociateAdditionalCertificatesWithListener",
             "DissociateAdditionalCertificatesFromListener", "UploadServerCertificate",
             "SetLoadBalancerHTTPSListenerAttribute", "SetDomainExtensionAttribute", "DeleteServerCertificate",
             "UploadUserCertificate"}


def lb_cert() -> dict:
    return World.cert("lb", DOMAINS, deploy=[
        {"provider": "alb", "region": "cn-shanghai", "listener_id": "lsn-demo0alb", "domain": DOMAINS[0]},
        {"provider": "nlb", "region": "cn-beijing", "listener_id": "lsn-demo0nlb@443", "domain": DOMAINS[1]},
        {"provider": "clb", "region": "cn-hangzhou", "load_balancer_id": "lb-demo0clb", "listener_port": 443,
         "domain": DOMAINS[2]},
    ])


def config_for(world: World, tmp_path):
    api = world.sandbox.api_url
    endpoints = {p: api for p in ("alidns", "cdn", "apigateway", "cas", "alb", "nlb", "slb")}
    return world.write_config(tmp_path, [lb_cert()], extra={"aliyun": {"endpoints": endpoints}})


def test_one_listener_of_each_kind(world, tmp_path):
    config = config_for(world, tmp_path)
    state = tmp_path / "state"
    run_ok(world, config)
    first = assert_serves(world, state, "lb", DOMAINS)

    since = time.time()
    run_ok(world, config)
    assert [e["action"] for e in world.sandbox.calls(since=since) if e["action"] in LB_WRITES] == []

    run_ok(world, config, "--force", "lb")
    second = assert_serves(world, state, "lb", DOMAINS)
    assert second != first
    view = sandbox_slb.view(world.sandbox.world, "lb-demo0clb", 443)
    assert view["certificates"] == [view["default"]]  # our superseded CLB store entry is gone
