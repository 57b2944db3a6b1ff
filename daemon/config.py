"""The configuration as the rest of the program sees it: frozen, typed, already validated.

Parsing and validation live in ``daemon.config_load``; nothing past it ever touches a raw dict.
Durations are stored as float seconds. Secrets are excluded from ``repr`` so that a config
object logged by accident leaks nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")

DIRECTORY_PRESETS = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "zerossl": "https://acme.zerossl.com/v2/DV90",
    "google": "https://dv.acme-v02.api.pki.goog/directory",
    "google-staging": "https://dv.acme-v02.test-api.pki.goog/directory",
}

DEFAULT_METADATA_ENDPOINT = "http://100.100.100.200"
DEFAULT_CONFIG_PATH = "/etc/alicertd/config.toml"


@dataclass(frozen=True)
class AcmeConfig:
    directory: str  # resolved URL
    directory_name: str  # what the user wrote (preset name or URL)
    email: str | None = None
    ca_bundle: Path | None = None
    account_key_type: str = "ec256"
    profile: str | None = None
    renew_before_days: int | None = None
    preferred_chain: str | None = None
    eab_kid: str | None = None
    eab_hmac_key: str | None = field(default=None, repr=False)
    timeout: float = 30.0  # per HTTP request to the CA


@dataclass(frozen=True)
class AliyunConfig:
    access_key_id: str | None = None
    access_key_secret: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    ram_role: str | None = None
    metadata_endpoint: str = DEFAULT_METADATA_ENDPOINT
    region: str = "cn-hangzhou"
    # Certificate Management Service (CAS) region of the account: cn-hangzhou (China site) or
    # ap-southeast-1 (international site); CDN's CertRegion takes exactly these two values.
    cas_region: str = "cn-hangzhou"
    # product ("alidns", "cdn", "apigateway") -> full URL override
    endpoints: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0  # read timeout per API call
    # Several accounts (issue #16). This object is one account entry: [aliyun] is "default",
    # [aliyun.accounts.NAME] the others (metadata_endpoint, endpoints and timeout are shared).
    name: str = "default"
    ram_role_arn: str | None = None  # STS AssumeRole into this role (acs:ram::<uid>:role/<name>)
    source_account: str | None = None  # ... with that entry's credentials (else this entry's own)
    role_session_name: str = "alicertd"
    # On the default entry only: every further entry by name (validated: known sources, no cycles).
    accounts: dict[str, AliyunConfig] = field(default_factory=dict)

    @property
    def account_names(self) -> tuple[str, ...]:
        return ("default", *self.accounts)

    def account(self, name: str = "default") -> AliyunConfig:
        """The entry called ``name`` (``default`` is [aliyun] itself). KeyError if unknown:
        config validation makes every name a deploy block or [dns] uses known."""
        if name == "default":
            return self
        return self.accounts[name]


@dataclass(frozen=True)
class DnsConfig:
    provider: str = "alidns"
    nameservers: tuple[str, ...] = ()  # "host" or "host:port"; empty = the zone's NS
    propagation_timeout: float = 300.0
    ttl: int = 600
    settings: Any = None  # the DNS provider's own parsed section (if any)
    accounts: tuple[str, ...] = ("default",)  # account entries whose zones are searched


@dataclass(frozen=True)
class VerifyConfig:
    tls: bool = True
    connect_to: str | None = None  # "host:port"
    timeout: float = 600.0


@dataclass(frozen=True)
class ScheduleConfig:
    interval: float | None = 12 * 3600.0
    cron: str | None = None
    jitter: float = 600.0


@dataclass(frozen=True)
class MetricsConfig:
    listen: str | None = None  # "host:port"


@dataclass(frozen=True)
class NotifyConfig:
    kind: str  # webhook | dingtalk | feishu | wecom
    url: str = field(repr=False)  # robot URLs carry access tokens
    events: tuple[str, ...] = ("failure", "renewal", "expiring")
    warn_days: int = 7
    secret: str | None = field(default=None, repr=False)  # DingTalk / Feishu signing secret


@dataclass(frozen=True)
class DeployConfig:
    provider: str
    settings: Any  # the provider's frozen settings object
    path: str  # "certificate[0].deploy[1]", for messages


@dataclass(frozen=True)
class CertificateConfig:
    name: str
    domains: tuple[str, ...]  # ASCII (punycode), lowercase, as ordered
    key_type: str = "ec256"
    deploy: tuple[DeployConfig, ...] = ()
    renew_before_days: int | None = None  # per-certificate override of acme.renew_before_days


@dataclass(frozen=True)
class RuntimeConfig:
    concurrency: int = 4  # certificates issued at once
    lock_timeout: float = 30.0  # how long a second process waits for the state lock


@dataclass(frozen=True)
class Config:
    path: Path
    state_dir: Path
    acme: AcmeConfig
    aliyun: AliyunConfig
    dns: DnsConfig
    verify: VerifyConfig
    schedule: ScheduleConfig
    metrics: MetricsConfig
    runtime: RuntimeConfig
    certificates: tuple[CertificateConfig, ...]
    notify: tuple[NotifyConfig, ...] = ()

    def certificate(self, name: str) -> CertificateConfig | None:
        return next((c for c in self.certificates if c.name == name), None)
