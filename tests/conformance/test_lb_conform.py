"""ALB, NLB and CLB providers against the sandbox, every exchange held to the official v2
models (alibabacloud-alb20200616, -nlb20220430, -slb20140515): one scenario per product that
reaches every action the provider calls, a renewal included (so that the removal calls run)."""

from __future__ import annotations

import time

from providers.alb import AlbProvider
from providers.clb import ClbProvider
from providers.nlb import NlbProvider
from sandbox import Sandbox
from tests.providers import test_alb_sandbox as alb_t
from tests.providers import test_clb_sandbox as clb_t
from tests.providers import test_nlb_sandbox as nlb_t
from tests.providers.certs import make_bundle
from tests.providers.conftest import provider_for

from .conftest import assert_conform


def _renew(module, cls, sb, state_dir, targets, name, domains, *, tls=False):
    ctx = module.ctx_for(sb, state_dir, tls=tls)
    for _ in range(2):  # first issue, then a renewal
        bundle = make_bundle(name, domains)
        ctx.bundles[name] = bundle
        provider = provider_for(cls, ctx)
        provider.read_bindings(targets)
        for t in targets:
            provider.bind(t, bundle)
            assert provider.verify(t, bundle, time.monotonic() + 20).serves(bundle)


def test_alb_default_and_sni(state_dir, exchanges):
    with Sandbox(alb_t.fixture(configuring=0.1)) as sb:
        _renew(alb_t, AlbProvider, sb, state_dir, [alb_t.target(), alb_t.target("sni")], "shop",
               [alb_t.DOMAIN])
    assert_conform(exchanges, "Alb", {"GetListenerAttribute", "ListListenerCertificates", "UpdateListenerAttribute",
                                      "AssociateAdditionalCertificatesWithListener",
                                      "DissociateAdditionalCertificatesFromListener"})


def test_nlb_listener_and_job(state_dir, exchanges):
    with Sandbox(nlb_t.fixture(configuring=0.1)) as sb:
        _renew(nlb_t, NlbProvider, sb, state_dir, [nlb_t.target()], "tls", [nlb_t.DOMAIN])
    assert_conform(exchanges, "Nlb", {"ListListeners", "GetListenerAttribute", "UpdateListenerAttribute", "GetJobStatus"})


def test_clb_store_listener_and_domain_extension(state_dir, exchanges):
    with Sandbox(clb_t.fixture()) as sb:
        _renew(clb_t, ClbProvider, sb, state_dir,
               [clb_t.target(), clb_t.target("sni", clb_t.SNI), clb_t.target(port=8443)], "lb",
               [clb_t.DOMAIN, clb_t.SNI])
    assert_conform(exchanges, "Slb", {"DescribeLoadBalancerListeners", "DescribeServerCertificates", "UploadServerCertificate",
                                      "DeleteServerCertificate", "DescribeLoadBalancerHTTPSListenerAttribute",
                                      "SetLoadBalancerHTTPSListenerAttribute", "SetDomainExtensionAttribute"})
