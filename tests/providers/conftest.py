"""Fixtures for the provider tests: a Config/ProviderContext without a config file."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from daemon.config import (
    AcmeConfig,
    AliyunConfig,
    Config,
    DnsConfig,
    MetricsConfig,
    RuntimeConfig,
    ScheduleConfig,
    VerifyConfig,
)
from providers.base import ProviderContext


def make_config(state_dir: Path, *, aliyun: AliyunConfig | None = None,
                verify: VerifyConfig | None = None) -> Config:
    return Config(
        path=state_dir / "config.toml", state_dir=state_dir,
        acme=AcmeConfig(directory="https://acme.invalid/directory", directory_name="test"),
        aliyun=aliyun or AliyunConfig(access_key_id="LTAItest", access_key_secret="secret"),
        dns=DnsConfig(), verify=verify or VerifyConfig(tls=False, timeout=30.0),
        schedule=ScheduleConfig(), metrics=MetricsConfig(), runtime=RuntimeConfig(),
        certificates=())


def make_ctx(state_dir: Path, **kw) -> ProviderContext:
    return ProviderContext(config=make_config(state_dir, **kw), journal=None,  # type: ignore[arg-type]
                           log=logging.getLogger("alicertd.test"), stop=threading.Event())


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def sandbox():
    """A started sandbox with the demo fixture on free ports (function-scoped: every test gets
    a fresh world). Tests that need another world call ``sandbox.load_fixture(...)``."""
    from sandbox import Sandbox, demo_fixture_path

    sb = Sandbox(fixture=demo_fixture_path(), api_port=0, dns_port=0, edge_port=0)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


# --------------------------------------------------------------------------- the sandbox

SANDBOX_AK = "LTAIsandboxdemo000001"
SANDBOX_SECRET = "sandbox-demo-secret-not-a-real-key"
FAST_POLL = (0.05, 0.1, 0.2, 0.3)


def sandbox_aliyun(sb) -> AliyunConfig:
    return AliyunConfig(access_key_id=SANDBOX_AK, access_key_secret=SANDBOX_SECRET, region="cn-hangzhou",
                        endpoints={"alidns": sb.api_url, "cdn": sb.api_url, "apigateway": sb.api_url,
                                   "cas": sb.api_url, "dcdn": sb.api_url, "esa": sb.api_url,
                                   "oss": sb.api_url, "alb": sb.api_url, "nlb": sb.api_url,
                                   "slb": sb.api_url})


def sandbox_ctx(sb, state_dir: Path, *, tls: bool = True, timeout: float = 20.0) -> ProviderContext:
    from daemon.state import CasRecords
    verify = VerifyConfig(tls=tls, connect_to=f"127.0.0.1:{sb.edge_port}", timeout=timeout)
    ctx = make_ctx(state_dir, aliyun=sandbox_aliyun(sb), verify=verify)
    ctx.cas_records = CasRecords(state_dir)  # the CAS ids survive like the daemon's state dir
    return ctx


def fast_api(ctx: ProviderContext):
    """The real access layer, with backoff waits shortened (the sandbox has no rate limit)."""
    import time

    from providers.aliyun.client import AliyunApi
    return AliyunApi(ctx.config.aliyun, log=ctx.log, stop=ctx.stop,
                     sleep=lambda s: time.sleep(min(s, 0.02)))


def provider_for(cls, ctx: ProviderContext, api=None):
    provider = cls(ctx, api=api if api is not None else fast_api(ctx))
    provider.poll_intervals = FAST_POLL
    return provider


def eventually(check, timeout: float = 5.0) -> bool:
    """Poll ``check`` until true or ``timeout``: for what a sandbox thread logs a moment later."""
    import time
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def sb():
    from sandbox import Sandbox
    with Sandbox(cdn_rollout_seconds=0.3) as sandbox:
        yield sandbox
