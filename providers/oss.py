"""OSS bucket custom domains as deploy targets: one target per custom domain of a bucket.

OSS is a REST API with its own signature, so this provider speaks it through the official
OSS SDK, ``alibabacloud-oss-v2`` (not ``oss2``): it signs with OSS Signature V4 (HMAC-SHA256,
region-scoped, the version Alibaba recommends; oss2 defaults to V1), its models carry the
CNAME certificate fields (``CertificateConfiguration``: ``CertId``, ``PreviousCertId``,
``Force``; ``ListCnameResult``), and it is Alibaba's current OSS SDK for Python. It is imported
only when a config names ``provider = "oss"`` (the registry loads providers lazily).

Bind: ``PutCname`` for a domain already mapped to the bucket, with
``CertificateConfiguration/CertId`` = ``<CAS id>-<region>`` of the bundle's CAS certificate
(``cas_hub(ctx).ensure``; the API reference's example CertId is ``493****-cn-hangzhou``). The
write is a compare-and-swap: ``PreviousCertId`` = the certificate the domain has now (read just
before), so a change made meanwhile by someone else fails instead of being overwritten blindly;
``Force=true`` only when the domain has no certificate (the reference: without PreviousCertId,
Force must be true). alicertd never maps a domain to a bucket (that needs the domain owner's
CNAME-token verification) and never detaches a certificate.

Read: one ``ListCname`` per bucket lists every custom domain with its certificate's ``CertId``
and ``Fingerprint``; a binding is ours when the CertId is our CAS certificate for the bundle, or
the fingerprint is our leaf's (SHA-1 as the reference's example shows it, SHA-256 accepted too).
Verify: ListCname until the domain shows our CertId, Status Enabled; then a TLS handshake.

Wildcard custom domains: the ``alibabacloud-oss-v2`` model has ``Cname.IsWildCard``, but how a
wildcard domain is named and verified is not documented where we looked, so this provider
refuses ``*.`` domains in the config rather than guess.

RAM actions: oss:ListCname, oss:PutCname; and, per the PutCname reference, attaching a
certificate also needs yundun-cert:DescribeSSLCertificatePrivateKey,
yundun-cert:DescribeSSLCertificatePublicKeyDetail and yundun-cert:CreateSSLCertificate.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import alibabacloud_oss_v2 as oss
import requests
from alibabacloud_oss_v2 import exceptions as oss_errors
from alibabacloud_oss_v2.retry import NopRetryer
from alibabacloud_oss_v2.transport import RequestsHttpClient
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from providers.aliyun import errors
from providers.aliyun.client import shared_api
from providers.aliyun.errors import ClockSkewError
from providers.base import (
    Binding,
    CertificateBundle,
    ConfigDefaults,
    ConfigErrors,
    CredentialError,
    ProviderContext,
    ProviderError,
    Target,
)
from providers.readback import Outcome, shake_hands, wait_for_readback
from providers.settings import Section
from providers.tls import POLL_INTERVALS

#: Every RAM action this provider needs (config/ram-policy.json; checked by a test).
RAM_ACTIONS = ("oss:ListCname", "oss:PutCname", "yundun-cert:DescribeSSLCertificatePrivateKey",
               "yundun-cert:DescribeSSLCertificatePublicKeyDetail", "yundun-cert:CreateSSLCertificate")

MAX_ATTEMPTS = 5
BACKOFF_BASE, BACKOFF_CAP = 0.25, 5.0
#: OSS's credential errors ("How to troubleshoot 403 status code when you access OSS").
_CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidSecurityToken",
                               "AccessKeyIdAndSecurityTokenNotMatch"})


@dataclass(frozen=True)
class OssSettings:
    bucket: str
    region: str
    domains: tuple[str, ...]
    account: str = "default"


@dataclass(frozen=True)
class CnameState:
    mapped: bool
    cert_id: str | None = None
    fingerprint: str | None = None  # as listed, normalised: lowercase hex without colons
    status: str | None = None


class _Creds(oss.credentials.CredentialsProvider):
    """Hands the SDK our current credentials on every request (STS refresh included)."""

    def __init__(self, source: Any):
        self.source = source

    def get_credentials(self) -> oss.credentials.Credentials:
        c = self.source.get()
        return oss.credentials.Credentials(c.access_key_id, c.access_key_secret, c.security_token)


def _norm(fp: Any) -> str:
    return str(fp or "").replace(":", "").strip().lower()


def _sha1(bundle: CertificateBundle) -> str:
    leaf = x509.load_pem_x509_certificates(bundle.fullchain_pem.encode())[0]
    return hashlib.sha1(leaf.public_bytes(Encoding.DER)).hexdigest()


class OssProvider:
    """Deploy to OSS custom domains (``[[certificate.deploy]] provider = "oss"``)."""

    kind = "deploy"
    name = "oss"

    poll_intervals = POLL_INTERVALS

    def __init__(self, ctx: ProviderContext, api: Any = None):
        self.ctx = ctx
        self._api_override = api
        self.clock = time.monotonic
        self.calls: dict[str, int] = {}
        self._clients: dict[tuple[str, str], oss.Client] = {}
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._seen: dict[str, CertificateBundle] = {}  # bundles bound or verified this run

    # ------------------------------------------------------------------ config

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any], path: str, errors: ConfigErrors,
                     defaults: ConfigDefaults) -> OssSettings | None:
        before = len(errors)
        s = Section(raw, path, errors)
        bucket = s.str("bucket", None, required=True)
        if bucket is not None and not (3 <= len(bucket) <= 63 and bucket.replace("-", "").isalnum()
                                       and bucket == bucket.lower() and bucket[0] != "-" and bucket[-1] != "-"):
            s.error("bucket", f"invalid bucket name {bucket!r} (3-63 lowercase letters, digits, '-')")
        region = s.str("region", defaults.region)
        domains = s.domains("domains", required=True, nonempty=True)
        for i, d in enumerate(domains):
            if d.startswith("*."):
                errors.add(f"{s.key_path('domains')}[{i}]", "wildcard custom domains are not supported "
                                                            "by the oss provider")
        account = s.account(defaults.accounts)
        s.finish()
        if len(errors) > before:
            return None
        return OssSettings(bucket=bucket, region=region, domains=tuple(domains), account=account)

    @classmethod
    def expand(cls, settings: OssSettings) -> list[Target]:
        return [Target(cls.name, f"{settings.region}/{settings.bucket}/{d}", settings, domain=d)
                for d in settings.domains]

    # ------------------------------------------------------------------ the SDK

    def api(self, account: str) -> Any:
        return self._api_override if self._api_override is not None else shared_api(self.ctx, account)

    def _client(self, s: OssSettings) -> oss.Client:
        key = (s.account, s.region)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                api = self.api(s.account)
                ep = api.endpoint("oss", s.region)
                cfg = oss.config.load_default()
                cfg.credentials_provider = _Creds(api.credentials)
                cfg.region = s.region
                cfg.endpoint = ep.url
                cfg.use_path_style = ep.loopback  # a virtual host on a loopback address cannot resolve
                cfg.retryer = NopRetryer()  # our own bounded backoff below
                cfg.connect_timeout = 5
                cfg.readwrite_timeout = api.config.timeout
                if ep.loopback:
                    # loopback goes direct even when HTTP(S)_PROXY is set (as the access layer
                    # does for RPC): requests would otherwise send it to the proxy
                    session = requests.Session()
                    session.trust_env = False
                    cfg.http_client = RequestsHttpClient(session=session, connect_timeout=5,
                                                         readwrite_timeout=api.config.timeout)
                client = self._clients[key] = oss.Client(cfg)
            return client

    def _send(self, s: OssSettings, action: str, fn) -> Any:
        """Call ``fn(client)`` with bounded, jittered retries of transient failures; map OSS
        errors onto ours (permission errors name the RAM action)."""
        ram = f"oss:{action}"
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with self._lock:
                self.calls[ram] = self.calls.get(ram, 0) + 1
            api = self.api(s.account)
            if hasattr(api, "calls"):
                api.calls[ram] += 1
            try:
                return fn(self._client(s))
            except (oss_errors.OperationError, oss_errors.BaseError) as exc:
                err = exc.unwrap() if isinstance(exc, oss_errors.OperationError) else exc
                code = getattr(err, "code", None)
                status = getattr(err, "status_code", None)
                transient = isinstance(err, oss_errors.RequestError) or (status or 0) >= 500 or status == 429
                if transient and attempt < MAX_ATTEMPTS:
                    delay = self._rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt))
                    if self.ctx.stop.wait(delay):
                        raise ProviderError(f"oss: {action} cancelled (shutting down)", retryable=True) from None
                    continue
                raise self._error(s, action, ram, err, code, status, transient) from None
        raise AssertionError("unreachable")

    def _error(self, s: OssSettings, action: str, ram: str, err: Any, code: str | None,
               status: int | None, transient: bool) -> ProviderError:
        where = f"oss: {action} on bucket {s.bucket} ({s.region})"
        handling = errors.classify(code, status).handling if code else None
        if handling == errors.PERMISSION:
            key = self.api(s.account).credentials.get().access_key_id
            return CredentialError(f"oss: {action} denied ({code}): the RAM policy of AccessKeyId "
                                   f"{key} must allow {ram}", code=code)
        if handling == errors.CLOCK:
            return ClockSkewError(f"{where} rejected ({code}): this machine's clock is off "
                                  f"by more than 15 minutes; fix the time (NTP) and retry", code=code)
        if code in _CREDENTIAL_CODES or handling in (errors.CREDENTIAL, errors.REFRESH):
            return CredentialError(f"{where} rejected the credentials ({code}, HTTP {status})", code=code)
        if code:
            message = " ".join(str(getattr(err, "message", "") or "").split())[:200]
            return ProviderError(f"{where} failed: {code} (HTTP {status}): {message}", code=code,
                                 retryable=transient)
        return ProviderError(f"{where} failed: {err.__class__.__name__}", code="SDK.HttpError",
                             retryable=True)

    def list_cname(self, s: OssSettings) -> dict[str, CnameState]:
        result = self._send(s, "ListCname", lambda c: c.list_cname(oss.ListCnameRequest(bucket=s.bucket)))
        out: dict[str, CnameState] = {}
        for info in result.cnames or []:
            cert = info.certificate
            out[str(info.domain or "").lower()] = CnameState(
                mapped=True, cert_id=(cert.cert_id or None) if cert else None,
                fingerprint=_norm(cert.fingerprint) if cert and cert.fingerprint else None,
                status=(cert.status or None) if cert else None)
        return out

    # ------------------------------------------------------------------ read

    def _ours(self, state: CnameState, account: str) -> CertificateBundle | None:
        """Which current bundle a listed certificate is, if any."""
        from providers.cas import cas_hub

        hub = cas_hub(self.ctx)
        with self._lock:
            candidates = list(self.ctx.bundles.items()) + list(self._seen.items())
        for name, bundle in candidates:
            cas = hub.current(name, account)
            if cas is not None and state.cert_id == f"{cas.cert_id}-{cas.region}":
                return bundle
            if state.fingerprint and state.fingerprint in (_sha1(bundle), bundle.fingerprint):
                return bundle
        return None

    def read_bindings(self, targets: Sequence[Target]) -> dict[Target, Binding]:
        """One ListCname per bucket."""
        groups: dict[OssSettings, list[Target]] = {}
        for t in targets:
            groups.setdefault(t.settings, []).append(t)
        result: dict[Target, Binding] = {}
        for s, group in groups.items():
            try:
                cnames = self.list_cname(s)
            except CredentialError:
                raise
            except ProviderError as exc:
                result.update((t, Binding("unknown", detail=str(exc))) for t in group)
                continue
            for t in group:
                result[t] = self._binding(cnames.get(t.domain or ""), s)
        return result

    def _binding(self, state: CnameState | None, s: OssSettings) -> Binding:
        if state is None:
            return Binding("error", detail=f"not a custom domain of bucket {s.bucket}")
        if not state.cert_id:
            return Binding("none", detail="no certificate")
        bundle = self._ours(state, s.account)
        ok = (state.status or "Enabled").lower() == "enabled"
        # The listed Fingerprint is SHA-1 (per the reference's example), not the SHA-256 a
        # Binding carries: for a certificate that is not ours, say nothing about it.
        detail = None if ok else f"Status {state.status}"
        if bundle is None and ok:
            detail = f"certificate {state.cert_id}, not a current one of ours"
        return Binding("ok" if ok else "error", serial=bundle.serial if bundle else None,
                       fingerprint=bundle.fingerprint if bundle else None,
                       not_after=bundle.not_after if bundle else None, cert_name=state.cert_id,
                       detail=detail)

    # ------------------------------------------------------------------ bind

    def bind(self, target: Target, bundle: CertificateBundle) -> None:
        """Attach the bundle's CAS certificate to the domain (compare-and-swap on the current
        one, see the module docstring). Idempotent: already ours -> nothing is written."""
        from providers.cas import cas_hub

        s: OssSettings = target.settings
        domain = target.domain or ""
        cas = cas_hub(self.ctx).ensure(bundle, s.account)
        wanted = f"{cas.cert_id}-{cas.region}"
        with self._lock:
            self._seen[bundle.name] = bundle
        for attempt in (1, 2):
            state = self.list_cname(s).get(domain)
            if state is None:
                raise ProviderError(f"oss: {domain} is not a custom domain of bucket {s.bucket} "
                                    f"({s.region}): map it (with its ownership check) first; alicertd "
                                    f"never maps domains")
            if state.cert_id == wanted:
                return
            conf = oss.CertificateConfiguration(cert_id=wanted)
            if state.cert_id:
                conf.previous_cert_id = state.cert_id
            else:
                conf.force = True
            request = oss.PutCnameRequest(bucket=s.bucket, bucket_cname_configuration=oss.BucketCnameConfiguration(
                cname=oss.Cname(domain=domain, certificate_configuration=conf)))
            try:
                self._send(s, "PutCname", lambda c, r=request: c.put_cname(r))
                break
            except CredentialError:
                raise
            except ProviderError as exc:
                # the domain's certificate changed between our read and our write: read again
                if attempt == 2 or exc.code != "InvalidArgument" or "previous" not in str(exc).lower():
                    raise
        self.ctx.log.info("oss: %s: bound CAS certificate %s (serial %s)", domain, wanted, bundle.serial)

    # ------------------------------------------------------------------ verify

    def verify(self, target: Target, bundle: CertificateBundle, deadline: float) -> Binding:
        from providers.cas import cas_hub

        s: OssSettings = target.settings
        domain = target.domain or ""
        cas = cas_hub(self.ctx).ensure(bundle, s.account)
        wanted = f"{cas.cert_id}-{cas.region}"
        started = self.clock()

        def probe() -> Outcome:
            state = self.list_cname(s).get(domain)
            if state is not None and state.cert_id == wanted and (state.status or "Enabled") == "Enabled":
                return Binding("ok", serial=bundle.serial, fingerprint=bundle.fingerprint,
                               not_after=bundle.not_after, cert_name=wanted)
            return f"has certificate {state.cert_id if state else None}"

        binding = wait_for_readback(f"oss: {domain}", probe, deadline=deadline, ctx=self.ctx,
                                    clock=self.clock, intervals=self.poll_intervals, started=started)
        shake_hands("oss", (domain,), bundle, deadline=deadline, ctx=self.ctx, clock=self.clock,
                    intervals=self.poll_intervals, started=started)
        return binding
