"""Shared by the renewal tests: a config, a state dir holding one certificate, and a stand-in
for the ACME side that answers renewalInfo as scripted (the Cycle's ``issuer_factory`` seam)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from daemon.config import Config
from daemon.config_load import parse_config
from daemon.state import StateStore
from tests.providers.certs import make_bundle


def config(tmp_path: Path, *, acme: dict[str, Any] | None = None, cert: dict[str, Any] | None = None,
           schedule: dict[str, Any] | None = None) -> Config:
    raw = {
        "state_dir": str(tmp_path / "state"),
        "acme": {"directory": "https://127.0.0.1:1/dir", **(acme or {})},
        "aliyun": {"access_key_id": "id", "access_key_secret": "secret", "region": "cn-hangzhou"},
        "schedule": {"interval": "12h", "jitter": "0s", **(schedule or {})},
        "certificate": [{"name": "www", "domains": ["example.com"], **(cert or {})}],
    }
    return parse_config(raw, tmp_path / "alicertd.toml", env={})


def store_with_certificate(cfg: Config, days: int = 90):
    """A state dir whose certificate ``www`` was issued just now, valid ``days`` days."""
    store = StateStore(cfg.state_dir)
    store.ensure()
    bundle = make_bundle("www", ["example.com"], days=days)
    store.commit_certificate("www", bundle.serial, bundle.key_pem, bundle.fullchain_pem,
                             {"domains": ["example.com"], "key_type": "ec256"})
    return store, bundle


class ScriptedIssuer:
    """Answers ``renewal_info`` with ``window`` (start, end, retry_after, explanation_url), or
    raises ``error``; counts the questions. Issues nothing."""

    def __init__(self, window: tuple[datetime, datetime, datetime, str | None] | None = None,
                 error: Exception | None = None):
        self.window = window
        self.error = error
        self.asked = 0

    def factory(self, *_: Any) -> ScriptedIssuer:
        return self

    def renewal_info(self, fullchain_pem: str):
        self.asked += 1
        if self.error is not None:
            raise self.error
        return self.window
