"""Shared set-up for the DCDN/ESA/OSS provider tests: a sandbox world holding one target of
each kind, a ProviderContext pointing every product at it, and direct looks into the world."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from sandbox import Sandbox

from .conftest import SANDBOX_AK, SANDBOX_SECRET, sandbox_aliyun, sandbox_ctx

LIMITED_AK = "LTAIh7limited0000001"
LIMITED_SECRET = "sandbox-limited-secret"

FIXTURE = {
    "access_key": [
        {"id": SANDBOX_AK, "secret": SANDBOX_SECRET, "permissions": ["*"]},
        # may read everything and upload to CAS, but not bind
        {"id": LIMITED_AK, "secret": LIMITED_SECRET,
         "permissions": ["yundun-cert:*", "dcdn:Describe*", "esa:List*", "esa:Get*", "oss:List*"]},
    ],
    "dcdn_domain": [{"name": "dcdn.example.com"}, {"name": "api.example.com"},
                    {"name": "*.dyn.example.com"}],
    "esa_site": [{"name": "example.com", "id": 7000001, "plan": "basicplan"},
                 {"name": "example.org", "id": 7000002, "plan": "basicplan", "cert_quota": 3}],
    "oss_bucket": [{"name": "static-assets", "region": "cn-hangzhou",
                    "cnames": ["static.example.com", "files.example.com"]}],
}


def world(rollout: float = 0.3) -> Sandbox:
    return Sandbox(FIXTURE, cdn_rollout_seconds=rollout, dns2_port=None)


def ctx_for(sb: Sandbox, state_dir: Path, *, tls: bool = True, limited: bool = False):
    ctx = sandbox_ctx(sb, state_dir, tls=tls)
    aliyun = sandbox_aliyun(sb)
    endpoints = {**aliyun.endpoints, "cas": sb.api_url, "dcdn": sb.api_url, "esa": sb.api_url,
                 "oss": sb.api_url}
    changes = {"endpoints": endpoints}
    if limited:
        changes.update(access_key_id=LIMITED_AK, access_key_secret=LIMITED_SECRET)
    ctx.config = dataclasses.replace(ctx.config, aliyun=dataclasses.replace(ctx.config.aliyun, **changes))
    return ctx


def writes(sb: Sandbox, since: float) -> list[str]:
    """Actions called since ``since`` that change something (anything not Describe/List/Get)."""
    return [c["action"] for c in sb.calls(since=since)
            if not c["action"].startswith(("Describe", "List", "Get"))]


def now() -> float:
    return time.time()
