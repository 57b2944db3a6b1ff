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
