"""Read, expand and validate a config file into a frozen :class:`daemon.config.Config`.

Validation is complete rather than fail-fast: every problem in the file is collected (with its
key path) and reported together, so one edit fixes them all. Nothing here touches the network
or the state directory.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_METADATA_ENDPOINT,
    DIRECTORY_PRESETS,
    KEY_TYPES,
    AcmeConfig,
    AliyunConfig,
    CertificateConfig,
    Config,
    DeployConfig,
    DnsConfig,
    MetricsConfig,
    NotifyConfig,
    RuntimeConfig,
    ScheduleConfig,
    VerifyConfig,
)
from providers.base import ConfigDefaults, ConfigErrors
from providers.settings import UNSET, Section, parse_host_port

NOTIFY_KINDS = ("webhook", "dingtalk", "feishu", "wecom")
NOTIFY_EVENTS = ("failure", "renewal", "expiring")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$")
_CERT_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})$")
_REGION = re.compile(r"^[a-z]{2,}(?:-[a-z0-9]+)+$")
#: The regions CDN's CertRegion accepts (SetCdnDomainSSLCertificate): CAS of the China site and
#: of the international site.
CAS_REGIONS = ("cn-hangzhou", "ap-southeast-1")


class ConfigError(Exception):
    """The configuration is invalid. ``messages`` holds one line per problem."""

    def __init__(self, path: Path | str, messages: list[str]):
        self.path = str(path)
        self.messages = messages
        super().__init__("; ".join(messages))

    def lines(self) -> list[str]:
        return [f"{self.path}: {m}" for m in self.messages]


def resolve_config_path(cli_value: str | None, env: Mapping[str, str] | None = None) -> Path:
    """Contract: ``--config``, then ``$ALICERTD_CONFIG``, then /etc/alicertd/config.toml."""
    env = os.environ if env is None else env
    return Path(cli_value or env.get("ALICERTD_CONFIG") or DEFAULT_CONFIG_PATH)


def _expand(value: Any, path: str, env: Mapping[str, str], errors: ConfigErrors) -> Any:
    """Replace ``${VAR}`` in every string with the environment's value (``$$`` is a literal
    ``$``). An unset variable is an error naming both the key and the variable."""
    if isinstance(value, str):
        unset: list[str] = []

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name = m.group(1)
            if name not in env:
                unset.append(name)
                return ""
            return env[name]
        text = _VAR.sub(sub, value)
        for name in unset:
            errors.add(path, f"environment variable {name} is not set")
        return UNSET if unset else text
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]", env, errors) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, f"{path}.{k}" if path else k, env, errors) for k, v in value.items()}
    return value


def load_config(path: Path | str, *, env: Mapping[str, str] | None = None,
                registry: Mapping[str, Any] | None = None) -> Config:
    """Parse and validate the file at ``path``; raise ConfigError listing every problem."""
    path = Path(path)
    env = os.environ if env is None else env
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, ["config file not found (set --config or ALICERTD_CONFIG)"]) from None
    except OSError as exc:
        raise ConfigError(path, [f"cannot read config file: {exc.strerror}"]) from None
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(path, ["config file is not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"invalid TOML: {exc}"]) from None
    return parse_config(raw, path, env=env, registry=registry)


def parse_config(raw: Mapping[str, Any], path: Path, *, env: Mapping[str, str],
                 registry: Mapping[str, Any] | None = None) -> Config:
    errors = ConfigErrors()
    data = _expand(dict(raw), "", env, errors)
    if registry is None:
        from providers.registry import load_providers
        try:
            registry = load_providers()
        except Exception as exc:  # a broken plugin: report it like any config problem
            errors.add("", f"cannot load providers: {exc}")
            registry = {}

    top = Section(data, "", errors)
    state_dir_text = top.str("state_dir", "/var/lib/alicertd")
    state_dir = Path(state_dir_text) if state_dir_text else Path("/var/lib/alicertd")
    if not state_dir.is_absolute():
        state_dir = (path.parent / state_dir).resolve()

    acme = _parse_acme(top.table("acme"), path)
    aliyun = _parse_aliyun(top.table("aliyun"))
    dns = _parse_dns(top.table("dns"), registry, aliyun)
    verify = _parse_verify(top.table("verify"))
    schedule = _parse_schedule(top.table("schedule"))
    metrics = MetricsConfig(listen=top.table("metrics").host_port("listen"))
    _finish(top, "metrics")
    runtime = _parse_runtime(top.table("runtime"))
    notify = _parse_notify(top, errors)
    certificates = _parse_certificates(top, errors, registry,
                                       ConfigDefaults(region=aliyun.region,
                                                      accounts=aliyun.account_names), acme)
    top.finish()
    if errors:
        raise ConfigError(path, errors.messages)
    config = Config(path=path, state_dir=state_dir, acme=acme, aliyun=aliyun, dns=dns, verify=verify,
                    schedule=schedule, metrics=metrics, runtime=runtime,
                    certificates=tuple(certificates), notify=tuple(notify))
    from daemon.renewal_rules import renewal_errors  # a fixed window that would reissue every cycle
    for key, message in renewal_errors(config):
        errors.add(key, message)
    if errors:
        raise ConfigError(path, errors.messages)
    return config


def _finish(top: Section, key: str) -> None:
    """Sub-tables read through ``top.table(key)`` are finished by their parser; this one is
    re-read to report unknown keys (tables are cheap)."""
    if top.has(key):
        sec = Section(top.raw[key], top.key_path(key), top.errors)
        if sec.valid:
            sec._seen.add("listen")  # noqa: SLF001 - the only key of [metrics]
            sec.finish()


def _parse_acme(s: Section, config_path: Path) -> AcmeConfig:
    name = s.str("directory", "letsencrypt")
    url = DIRECTORY_PRESETS.get(name)
    if url is None and name:
        if "://" in name:
            from providers.settings import check_url
            url = check_url(s, "directory", name)
        else:
            s.error("directory", f"unknown preset {name!r} (expected one of: "
                                 f"{', '.join(DIRECTORY_PRESETS)}, or an https URL)")
    email = s.str("email")
    if email is not None and not re.fullmatch(r"[^@\s:]+@[^@\s]+\.[^@\s]+", email.removeprefix("mailto:")):
        s.error("email", f"invalid e-mail address {email!r}")
    ca_bundle = s.str("ca_bundle")
    ca_path = None
    if ca_bundle is not None:
        ca_path = Path(ca_bundle)
        if not ca_path.is_absolute():
            ca_path = (config_path.parent / ca_path).resolve()
        if not os.access(ca_path, os.R_OK) or not ca_path.is_file():
            s.error("ca_bundle", f"cannot read file {str(ca_path)!r}")
    key_type = s.str("account_key_type", "ec256", choices=KEY_TYPES)
    profile = s.str("profile")
    renew = s.int("renew_before_days", None, minimum=1, maximum=365)
    preferred = s.str("preferred_chain")
    eab_kid = s.str("eab_kid")
    eab_key = s.str("eab_hmac_key")
    if (eab_kid is None) != (eab_key is None):
        missing = "eab_hmac_key" if eab_key is None else "eab_kid"
        s.error(missing, "required when the other EAB key is set (eab_kid and eab_hmac_key go together)")
    if eab_key is not None:
        try:
            base64.urlsafe_b64decode(eab_key + "=" * (-len(eab_key) % 4))
        except (binascii.Error, ValueError):
            s.error("eab_hmac_key", "is not base64url text (the value your CA gave you)")
    timeout = s.duration("timeout", 30.0, minimum=1)
    s.finish()
    return AcmeConfig(directory=url or "", directory_name=name or "", email=email, ca_bundle=ca_path,
                      account_key_type=key_type, profile=profile, renew_before_days=renew,
                      preferred_chain=preferred, eab_kid=eab_kid, eab_hmac_key=eab_key, timeout=timeout)


#: RoleArn "Format: `acs:ram::<account_id>:role/<role_name>`" (alibabacloud-sts20150401
#: AssumeRoleRequest); account ids are digits, RAM role names letters, digits, ``.`` and ``-``.
_ROLE_ARN = re.compile(r"^acs:ram::[0-9]{1,32}:role/[A-Za-z0-9.\-]{1,64}$")
#: RoleSessionName: "2 to 64 characters ... letters, digits, and `. @ - _`" (same model).
_SESSION_NAME = re.compile(r"^[A-Za-z0-9.@_-]{2,64}$")
_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHARED_ALIYUN_KEYS = ("metadata_endpoint", "endpoints", "timeout", "accounts")


def _parse_aliyun(s: Section) -> AliyunConfig:
    """[aliyun] (the account entry "default") and each [aliyun.accounts.NAME]; then the
    cross-entry checks: known source_account, no cycle of sources, some credentials each."""
    default = _parse_account(s, "default", None)
    metadata = s.url("metadata_endpoint", DEFAULT_METADATA_ENDPOINT, http_loopback_only=False)
    endpoints: dict[str, str] = {}
    e = s.table("endpoints")
    for product in ("alidns", "cdn", "apigateway", "cas", "sts", "dcdn", "esa", "oss", "alb",
                    "nlb", "slb"):
        url = e.url(product)
        if url:
            endpoints[product] = url.rstrip("/")
    e.finish()
    timeout = s.duration("timeout", 10.0, minimum=1)
    shared = {"metadata_endpoint": metadata.rstrip("/"), "endpoints": endpoints, "timeout": timeout}
    entries: dict[str, AliyunConfig] = {}
    a = s.table("accounts")
    for name in list(a.raw):
        a._seen.add(name)  # noqa: SLF001 - every key of [aliyun.accounts] is an entry name
        path = a.key_path(name)
        if name == "default":
            a.errors.add(path, 'the entry "default" is [aliyun] itself; name this one differently')
            continue
        if not _ACCOUNT_NAME.match(name):
            a.errors.add(path, f"invalid account name {name!r} (letters, digits, - and _)")
            continue
        sec = Section(a.raw[name], path, a.errors)
        if not sec.valid:
            continue
        entries[name] = dataclasses.replace(_parse_account(sec, name, default), **shared)
        sec.finish()
    s.finish()
    default = dataclasses.replace(default, **shared, accounts=entries)
    _check_sources(s, default)
    return default


def _parse_account(s: Section, name: str, base: AliyunConfig | None) -> AliyunConfig:
    """The keys every account entry has. ``base`` (the default entry, for the others) gives
    region and cas_region when the entry leaves them out."""
    key_id = s.str("access_key_id")
    secret = s.str("access_key_secret")
    token = s.str("security_token")
    if (key_id is None) != (secret is None) and s.valid:
        missing = "access_key_secret" if secret is None else "access_key_id"
        if not s.has(missing):
            s.error(missing, "required when the other AccessKey key is set")
    if token is not None and key_id is None and not s.has("access_key_id"):
        s.error("security_token", "needs access_key_id and access_key_secret (STS credentials)")
    role = s.str("ram_role")
    if role is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", role):
        s.error("ram_role", f"invalid RAM role name {role!r}")
    arn = s.str("ram_role_arn")
    if arn is not None and not _ROLE_ARN.match(arn):
        s.error("ram_role_arn", f"malformed role ARN {arn!r} (expected acs:ram::<account id>:role/<role name>)")
        arn = None
    source = s.str("source_account")
    if source is not None and not s.has("ram_role_arn"):
        s.error("source_account", "needs ram_role_arn (the role to assume with that entry's credentials)")
    if source is not None and (key_id is not None or role is not None):
        s.error("source_account", "set either source_account or this entry's own credentials "
                                  "(access_key_id/access_key_secret or ram_role), not both")
    session = s.str("role_session_name", "alicertd")
    if session is not None and not _SESSION_NAME.match(session):
        s.error("role_session_name", f"invalid role session name {session!r} (2-64 letters, "
                                     "digits, '.', '@', '-', '_')")
        session = "alicertd"
    if session != "alicertd" and not s.has("ram_role_arn"):
        s.error("role_session_name", "only used with ram_role_arn")
    base_region = base.region if base else "cn-hangzhou"
    region = s.str("region", base_region)
    if region and not _REGION.match(region):
        s.error("region", f"invalid region id {region!r} (e.g. cn-hangzhou)")
    base_cas = base.cas_region if base else "cn-hangzhou"
    cas_region = s.str("cas_region", base_cas)
    if cas_region and cas_region not in CAS_REGIONS:
        s.error("cas_region", f"must be one of {', '.join(CAS_REGIONS)} (China site, international "
                              f"site), not {cas_region!r}")
    if base is not None:  # [aliyun]-only keys are reported by finish() as unknown
        for key in _SHARED_ALIYUN_KEYS:
            if s.has(key):
                s._seen.add(key)  # noqa: SLF001
                s.error(key, "set in [aliyun] only (shared by every account)")
        own = any(s.has(k) for k in ("access_key_id", "access_key_secret", "ram_role"))
        if s.valid and not own and not s.has("ram_role_arn"):
            s.errors.add(s.path, "no credentials: set access_key_id and access_key_secret, "
                                 "ram_role, or ram_role_arn with source_account")
        elif s.has("ram_role_arn") and not own and not s.has("source_account"):
            s.error("ram_role_arn", "needs source_account, or this entry's own credentials to "
                                    "assume the role with")
    return AliyunConfig(access_key_id=key_id, access_key_secret=secret, security_token=token,
                        ram_role=role, region=region or base_region,
                        cas_region=cas_region or base_cas, name=name, ram_role_arn=arn,
                        source_account=source, role_session_name=session or "alicertd")


def _check_sources(s: Section, default: AliyunConfig) -> None:
    """Every source_account names a known entry, and following sources never loops."""
    entries = {"default": default, **default.accounts}
    for name, entry in entries.items():
        path = "aliyun" if name == "default" else f"aliyun.accounts.{name}"
        src = entry.source_account
        if src is None:
            continue
        if src not in entries:
            s.errors.add(f"{path}.source_account", f"unknown account {src!r} (known: "
                                                   f"{', '.join(entries)})")
            continue
        seen = [name]
        while src is not None and src in entries and src not in seen:
            seen.append(src)
            src = entries[src].source_account
        if src is not None and src in seen:
            chain = " -> ".join([*seen, src])
            s.errors.add(f"{path}.source_account", f"a cycle of source accounts: {chain}")


def _parse_dns(s: Section, registry: Mapping[str, Any], aliyun: AliyunConfig) -> DnsConfig:
    provider = s.str("provider", "alidns")
    from providers.registry import available, lookup
    cls, broken = lookup(registry, provider) if provider else (None, None)
    if broken:
        s.error("provider", broken)
    elif provider and registry and (cls is None or getattr(cls, "kind", None) != "dns"):
        dns_names = available(registry, "dns")
        s.error("provider", f"unknown DNS provider {provider!r} (available: {', '.join(dns_names)})")
    nameservers = s.str_list("nameservers", ())
    for i, ns in enumerate(nameservers):
        if parse_host_port(ns, 53) is None:
            s.errors.add(f"{s.key_path('nameservers')}[{i}]", f"invalid nameserver {ns!r} (host or host:port)")
    timeout = s.duration("propagation_timeout", 300.0, minimum=1)
    ttl = s.int("ttl", 600, minimum=1, maximum=86400)
    accounts = s.str_list("accounts", ("default",), nonempty=True)
    for i, name in enumerate(accounts):
        if name not in aliyun.account_names:
            s.errors.add(f"{s.key_path('accounts')}[{i}]", f"unknown account {name!r} (known: "
                                                          f"{', '.join(aliyun.account_names)})")
        elif name in accounts[:i]:
            s.errors.add(f"{s.key_path('accounts')}[{i}]", f"duplicate account {name!r}")
    settings = None
    if cls is not None and s.has(provider or ""):
        settings = cls.parse_config(s.raw[provider], s.key_path(provider), s.errors,
                                    ConfigDefaults(region=aliyun.region,
                                                   accounts=aliyun.account_names))
        s._seen.add(provider)  # noqa: SLF001
    s.finish()
    return DnsConfig(provider=provider or "alidns", nameservers=tuple(nameservers),
                     propagation_timeout=timeout, ttl=ttl, settings=settings,
                     accounts=tuple(accounts))


def _parse_verify(s: Section) -> VerifyConfig:
    tls = s.bool("tls", True)
    connect_to = s.host_port("connect_to", None, default_port=443)
    timeout = s.duration("timeout", 600.0, minimum=1)
    s.finish()
    return VerifyConfig(tls=tls, connect_to=connect_to, timeout=timeout)


def _parse_schedule(s: Section) -> ScheduleConfig:
    interval = s.duration("interval", None, minimum=1)
    cron = s.str("cron")
    if interval is not None and cron is not None:
        s.error("cron", "set either interval or cron, not both")
    if cron is not None:
        problem = _cron_problem(cron)
        if problem:
            s.error("cron", problem)
    jitter = s.duration("jitter", 600.0)
    s.finish()
    if interval is None and cron is None:
        interval = 12 * 3600.0
    return ScheduleConfig(interval=interval, cron=cron, jitter=jitter)


def _cron_problem(expr: str) -> str | None:
    """The scheduler's own check, so that check-config and the running daemon agree."""
    from daemon.scheduler import validate_cron
    return validate_cron(expr)


def _parse_runtime(s: Section) -> RuntimeConfig:
    concurrency = s.int("concurrency", 4, minimum=1, maximum=64)
    lock_timeout = s.duration("lock_timeout", 30.0)
    s.finish()
    return RuntimeConfig(concurrency=concurrency, lock_timeout=lock_timeout)


def _array_of_tables(top: Section, key: str) -> list[tuple[str, Any]]:
    value = top.raw.get(key)
    top._seen.add(key)  # noqa: SLF001
    if value is None:
        return []
    if not isinstance(value, list):
        top.error(key, f"expected an array of tables ([[{key}]])")
        return []
    return [(f"{top.key_path(key)}[{i}]", item) for i, item in enumerate(value)]


def _parse_notify(top: Section, errors: ConfigErrors) -> list[NotifyConfig]:
    result = []
    for path, raw in _array_of_tables(top, "notify"):
        s = Section(raw, path, errors)
        kind = s.str("kind", None, required=True, choices=NOTIFY_KINDS)
        url = s.url("url", None, required=True)
        events = s.str_list("events", NOTIFY_EVENTS)
        for i, ev in enumerate(events):
            if ev not in NOTIFY_EVENTS:
                errors.add(f"{path}.events[{i}]", f"unknown event {ev!r} (expected: {', '.join(NOTIFY_EVENTS)})")
        warn_days = s.int("warn_days", 7, minimum=1, maximum=365)
        secret = s.str("secret")
        s.finish()
        if kind and url:
            result.append(NotifyConfig(kind=kind, url=url, events=tuple(events), warn_days=warn_days,
                                       secret=secret))
    return result


def _parse_certificates(top: Section, errors: ConfigErrors, registry: Mapping[str, Any],
                        defaults: ConfigDefaults, acme: AcmeConfig) -> list[CertificateConfig]:
    from providers.registry import available, lookup
    items = _array_of_tables(top, "certificate")
    if not items and "certificate" not in top.raw:
        errors.add("certificate", "no [[certificate]] configured")
    seen_names: dict[str, str] = {}
    result = []
    for path, raw in items:
        s = Section(raw, path, errors)
        name = s.str("name", None, required=True)
        if name is not None:
            if not _CERT_NAME.match(name):
                s.error("name", f"invalid name {name!r} (lowercase letters, digits and '-', "
                                f"at most 63, starting with a letter or digit)")
            elif name in seen_names:
                s.error("name", f"duplicate certificate name {name!r} (also {seen_names[name]}.name)")
            else:
                seen_names[name] = path
        domains = s.domains("domains", required=True, nonempty=True)
        key_type = s.str("key_type", "ec256", choices=KEY_TYPES)
        renew = s.int("renew_before_days", None, minimum=1, maximum=365)
        deploys = []
        for dpath, draw in _array_of_tables(s, "deploy"):
            d = Section(draw, dpath, errors)
            provider = d.str("provider", None, required=True)
            if provider is None:
                continue
            cls, broken = lookup(registry, provider)
            if broken:
                d.error("provider", broken)
                continue
            if cls is None or getattr(cls, "kind", None) != "deploy":
                names = available(registry, "deploy")
                d.error("provider", f"unknown deploy provider {provider!r} (available: {', '.join(names)})")
                continue
            rest = {k: v for k, v in d.raw.items() if k != "provider"}
            before = len(errors)
            settings = cls.parse_config(rest, dpath, errors, defaults)
            if settings is not None and len(errors) == before:
                deploys.append(DeployConfig(provider=provider, settings=settings, path=dpath))
        s.finish()
        if name and domains:
            result.append(CertificateConfig(name=name, domains=tuple(domains), key_type=key_type or "ec256",
                                            deploy=tuple(deploys), renew_before_days=renew))
    return result
