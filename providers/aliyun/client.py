"""The one way alicertd talks to Alibaba Cloud OpenAPI: the official SDK, with its hazards fixed.

Each rule below answers a documented SDK behaviour (/work/shared/aliyun-api.md):

- HTTPS for every endpoint that is not loopback (§2.1: the SDK defaults to plain HTTP while our
  requests carry private keys in the query string); plain HTTP only for a loopback override.
- POST for every request (§2.1: CloudAPI classes default to GET, putting keys into URLs).
- Explicit endpoints (``[aliyun.endpoints]`` or the product's public one): no location-service
  lookups, no ``cloudapi.<region>`` guesses.
- Connect timeout 5 s, read timeout ``[aliyun] timeout`` on every call (§2.2).
- Proxies decided here: loopback goes direct even when HTTP(S)_PROXY is set (the SDK ignores
  NO_PROXY); other hosts follow HTTP(S)_PROXY/NO_PROXY.
- Our own retries (§2.3: the SDK retries nothing for Alidns, CDN or CloudAPI), classified by the
  one table in :mod:`providers.aliyun.errors`; waits watch ``stop``.
- Credentials chosen by :mod:`providers.aliyun.credentials` and handed to the SDK so that env
  ``ALIYUN_ACCESS_KEY_ID``/``_SECRET`` cannot override them (§2.4).
- ``aliyunsdkcore`` loggers clamped (§2.5: at DEBUG they print private keys and tokens).
- A ``200`` whose body carries ``Code`` is an error; a non-JSON body is an error (§2.6).
- No message ever carries the AccessKeySecret, an STS token or a private key: server messages
  are scrubbed of every sensitive request value and of PEM blocks, and a signature mismatch
  message (which echoes the whole string to sign) is dropped.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import json
import logging
import os
import random
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, urlsplit

from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkcore.auth.signers.sts_token_signer import StsTokenSigner
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.http import protocol_type

from daemon.config import AliyunConfig
from providers.aliyun import errors
from providers.aliyun.credentials import (
    SDK_ENV_OVERRIDES,
    AssumeRoleSource,
    Credentials,
    CredentialSource,
    key_prefix,
)
from providers.base import ProviderError

CONNECT_TIMEOUT = 5.0
BACKOFF_BASE = 0.25  # first wait; doubles per attempt
THROTTLE_BASE = 0.5  # throttling waits start longer: the limit is per second
BACKOFF_CAP = 10.0
RETRY_BUDGET = 60.0  # seconds one call may spend in backoff waits before giving up
MESSAGE_LIMIT = 240
NOT_JSON = "SDK.InvalidResponse"  # our code for a 2xx whose body is not a JSON object

#: Request parameters whose values are secret: scrubbed from every message we build.
SENSITIVE_PARAMS = frozenset({
    "SSLPri", "PrivateKey", "CertificatePrivateKey", "Key", "SignPrivateKey",
    "EncryptPrivateKey", "SecurityToken", "AccessKeySecret",
})

_PEM_RE = re.compile(r"-----BEGIN[^-]{0,40}-----.*?(-----END[^-]{0,40}-----|$)", re.S)
# A URL query string (requests' error texts quote the whole URL: every parameter, SSLPri too).
_QUERY_RE = re.compile(r"\?[A-Za-z0-9_]+=[^\s'\")]*")
_SIGN_RE = re.compile(r"string\s*to\s*sign.*", re.S | re.I)


@dataclass(frozen=True)
class Product:
    """``name`` is ours (and the RAM action prefix); ``default_host`` the public endpoint."""

    name: str
    ram_prefix: str
    default_host: Callable[[str], str]


#: Regions whose CLB endpoint is slb.aliyuncs.com (alibabacloud-slb20140515 3.3.31 endpoint map).
_SLB_CENTRAL = frozenset({  # the public ones; the map's internal/test regions are left out
    "cn-qingdao", "cn-beijing", "cn-hangzhou", "cn-shanghai", "cn-shenzhen", "cn-hongkong",
    "ap-southeast-1", "us-east-1", "us-west-1", "cn-shanghai-finance-1", "cn-shenzhen-finance-1",
    "cn-north-2-gov-1", "cn-hangzhou-finance", "cn-wuhan", "cn-fujian", "cn-zhangbei",
})

PRODUCTS: dict[str, Product] = {
    "alidns": Product("alidns", "alidns", lambda region: "alidns.aliyuncs.com"),
    # CDN is a global service; cdn.aliyuncs.com serves every account.
    "cdn": Product("cdn", "cdn", lambda region: "cdn.aliyuncs.com"),
    # API Gateway is regional: apigateway.<region>.aliyuncs.com (the SDK may guess cloudapi.*).
    "apigateway": Product("apigateway", "apigateway", lambda region: f"apigateway.{region}.aliyuncs.com"),
    # DCDN 2018-01-15: dcdn.aliyuncs.com for every region (alibabacloud-dcdn20180115 endpoint map).
    "dcdn": Product("dcdn", "dcdn", lambda region: "dcdn.aliyuncs.com"),
    # ESA 2024-09-10: the regional rule esa.<region>.aliyuncs.com (alibabacloud-esa20240910
    # client: endpoint_rule "regional"); cn-hangzhou on the China site, ap-southeast-1 abroad.
    "esa": Product("esa", "esa", lambda region: f"esa.{region}.aliyuncs.com"),
    # OSS (REST, called through alibabacloud-oss-v2, not AcsClient): oss-<region>.aliyuncs.com
    # (OSS "Regions and endpoints"); only endpoint() is used for it.
    "oss": Product("oss", "oss", lambda region: f"oss-{region}.aliyuncs.com"),
    # CAS 2020-04-07 (RAM code yundun-cert): cas.aliyuncs.com for cn-hangzhou, the regional rule
    # cas.<region>.aliyuncs.com otherwise (ap-southeast-1: the international site); called with
    # the account's cas_region.
    # STS 2015-04-01: the regional rule sts.<region>.aliyuncs.com (alibabacloud-sts20150401
    # client: endpoint_rule "regional"; its endpoint map lists only special regions).
    "sts": Product("sts", "sts", lambda region: f"sts.{region}.aliyuncs.com"),
    "cas": Product("cas", "yundun-cert",
                   lambda region: "cas.aliyuncs.com" if region == "cn-hangzhou" else f"cas.{region}.aliyuncs.com"),
    # ALB 2020-06-16 and NLB 2022-04-30: the regional rule <product>.<region>.aliyuncs.com
    # (alibabacloud-alb20200616 / -nlb20220430 clients: endpoint_rule "regional").
    "alb": Product("alb", "alb", lambda region: f"alb.{region}.aliyuncs.com"),
    "nlb": Product("nlb", "nlb", lambda region: f"nlb.{region}.aliyuncs.com"),
    # CLB (slb 2014-05-15): slb.aliyuncs.com for the regions in the model's endpoint map, the
    # regional rule otherwise (alibabacloud-slb20140515 client).
    "slb": Product("slb", "slb", lambda region: "slb.aliyuncs.com" if region in _SLB_CENTRAL
                   else f"slb.{region}.aliyuncs.com"),
}


@dataclass(frozen=True)
class Endpoint:
    """Where one product's requests go: ``host`` is ``host[:port]``, ``scheme`` http|https."""

    scheme: str
    host: str
    loopback: bool

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _SdkLogScrubber(logging.Filter):
    """Scrubs what the SDK still logs at WARNING and above: its ERROR lines quote server
    messages (a signature mismatch echoes the whole string to sign, SSLPri and SecurityToken
    included) and requests' exception texts (the whole URL with its query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a broken format string: drop the args rather than the line
            text = str(record.msg)
        record.msg, record.args = _scrub(text, [], limit=1000), None
        return True


_SCRUBBER = _SdkLogScrubber()


def clamp_sdk_loggers(level: int = logging.WARNING) -> None:
    """Raise every ``aliyunsdkcore*`` logger to at least ``level`` and scrub what remains.

    Every logger, not just the parent: ``aliyunsdkcore.http.http_response`` sets itself to DEBUG
    at import, so inheritance alone does not clamp it; the vendored urllib3 logs full URLs
    (query strings with SSLPri) at DEBUG too."""
    names = ["aliyunsdkcore"] + [n for n in list(logging.root.manager.loggerDict)
                                 if n.startswith("aliyunsdkcore.")]
    for name in names:
        logger = logging.getLogger(name)
        if logger.level < level:  # NOTSET (0) included
            logger.setLevel(level)
        if _SCRUBBER not in logger.filters:
            logger.addFilter(_SCRUBBER)


def _one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class AliyunApi:
    """Sends SDK requests for the products alicertd uses. One instance per run, shared by
    providers; thread-safe.

    ``calls`` counts HTTP requests actually sent, per ``"<product>:<Action>"`` (retries
    included), for the bench and for tests."""

    def __init__(self, config: AliyunConfig, *, log: logging.Logger,
                 stop: threading.Event | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, max_attempts: int = 6,
                 credentials: CredentialSource | None = None, rng: random.Random | None = None):
        self.config = config
        self.log = log
        self.calls: collections.Counter[str] = collections.Counter()
        self._stop = stop
        self._sleep = sleep
        self._clock = clock
        self.max_attempts = max(1, max_attempts)
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._clients: dict[tuple, tuple[Credentials, AcsClient]] = {}
        self.credentials = credentials or CredentialSource(config, log=log)
        self._announced = False
        clamp_sdk_loggers()
        set_but_unused = [n for n in SDK_ENV_OVERRIDES if os.environ.get(n)]
        if set_but_unused:
            log.warning("aliyun: %s set in the environment but not used: alicertd uses %s",
                        "/".join(set_but_unused), self.credentials.describe())

    # -- endpoints ------------------------------------------------------------

    def endpoint(self, product: str, region: str | None = None) -> Endpoint:
        """The override from ``[aliyun.endpoints]`` or the product's public endpoint (HTTPS)."""
        info = _product(product)
        override = self.config.endpoints.get(product)
        if override:
            parts = urlsplit(override)
            host = parts.hostname or ""
            loop = is_loopback(host)
            scheme = parts.scheme.lower() if parts.scheme else "https"
            if scheme != "https" and not loop:
                scheme = "https"  # the config loader refuses this; never send keys in clear
            hostport = f"[{host}]" if ":" in host else host
            if parts.port:
                hostport += f":{parts.port}"
            return Endpoint(scheme, hostport, loop)
        return Endpoint("https", info.default_host(region or self.config.region), False)

    def prepare(self, product: str, request, *, region: str | None = None) -> Endpoint:
        """Apply endpoint, protocol, method and timeouts to ``request`` (nothing is sent)."""
        ep = self.endpoint(product, region)
        request.set_endpoint(ep.host)
        # The SDK compares with ``is`` (http_response.py): pass its own constants.
        request.set_protocol_type(protocol_type.HTTPS if ep.scheme == "https" else protocol_type.HTTP)
        request.set_method("POST")
        request.set_connect_timeout(CONNECT_TIMEOUT)
        request.set_read_timeout(self.config.timeout)
        request.set_accept_format("JSON")
        return ep

    def _proxies(self, ep: Endpoint) -> dict[str, str | None]:
        """Explicit proxies for the SDK (which would otherwise read HTTP(S)_PROXY and ignore
        NO_PROXY). A dict with None values means "direct" and is truthy, so the SDK keeps it."""
        direct: dict[str, str | None] = {"http": None, "https": None}
        if ep.loopback:
            return direct
        host = ep.host.rsplit(":", 1)[0] if not ep.host.startswith("[") else ep.host
        if urllib.request.proxy_bypass(host.strip("[]")):
            return direct
        env = urllib.request.getproxies()
        proxy = env.get(ep.scheme)
        return {ep.scheme: proxy} if proxy else direct

    def _client(self, region: str, creds: Credentials, proxies: dict) -> AcsClient:
        """One AcsClient per (region, proxies), rebuilt when the credentials change."""
        key = (region, tuple(sorted(proxies.items())))
        with self._lock:
            cached = self._clients.get(key)
            if cached is not None and cached[0] == creds:
                return cached[1]
            # ak/secret passed explicitly: SignerFactory's first branch, ahead of the
            # ALIYUN_ACCESS_KEY_* env override.
            client = AcsClient(ak=creds.access_key_id, secret=creds.access_key_secret,
                               region_id=region, auto_retry=False,
                               connect_timeout=CONNECT_TIMEOUT, timeout=self.config.timeout,
                               proxy=dict(proxies))
            if creds.security_token:
                # There is no constructor path for STS credentials that beats the env override,
                # so the signer is replaced after construction.
                client._signer = StsTokenSigner(StsTokenCredential(
                    creds.access_key_id, creds.access_key_secret, creds.security_token))
            clamp_sdk_loggers()
            self._clients[key] = (creds, client)
            return client

    # -- the call ----------------------------------------------------------------

    def call(self, product: str, request, *, region: str | None = None) -> dict:
        """Send ``request`` (a fresh SDK AcsRequest per call: the SDK mutates it) and return the
        parsed JSON body.

        Raises ProviderError (``code`` = Alibaba error code, ``retryable`` from the table) or
        CredentialError (bad key/secret/token, missing RAM permission — naming the action —,
        or a wrong clock). Messages are one line and start with the product name."""
        info = _product(product)
        region = region or self.config.region
        action = request.get_action_name()
        ep = self.prepare(product, request, region=region)
        proxies = self._proxies(ep)
        secrets = _sensitive_values(request)
        started = self._clock()
        attempt = 0
        nonce_retried = False
        refreshed = False
        while True:
            # No "stop is set" check before sending: cleanup must still reach the API during
            # shutdown. ``stop`` cuts the backoff waits short instead.
            creds = self.credentials.get()
            if not self._announced:
                self._announced = True
                self.log.info("aliyun: using credentials from %s", creds.describe())
            client = self._client(region, creds, proxies)
            attempt += 1
            code, status, message, body = self._send(client, product, action, request)
            if code is None:
                parsed = _parse_body(body)
                if parsed is None:
                    # A gateway or proxy page instead of the API's answer: retried like a 5xx.
                    code, message = NOT_JSON, ""
                else:
                    body_code = parsed.get("Code")
                    if (body_code in (None, "", "200", "Success", "OK")
                            or not isinstance(body_code, str)):
                        return parsed
                    code, message = body_code, str(parsed.get("Message") or "")
            rule = errors.classify(code, status)
            status_txt = f"HTTP {status}" if status else "no HTTP response"

            delay = self._backoff(code, attempt) if rule.handling == errors.BACKOFF else 0.0
            if (rule.handling == errors.BACKOFF and attempt < self.max_attempts
                    and self._clock() - started + delay <= RETRY_BUDGET):
                self.log.info("%s: %s: %s (%s), attempt %d/%d, retrying in %.2f s", product, action,
                              code, status_txt, attempt, self.max_attempts, delay)
                self._wait(delay, product, action)
                continue
            if rule.handling == errors.RETRY_ONCE and not nonce_retried:
                nonce_retried = True
                self.log.info("%s: %s: %s, retrying once with a fresh nonce", product, action, code)
                continue
            # An expired STS key may also be reported as an unknown AccessKeyId once the
            # gateway forgot it: for RAM-role credentials, one refresh covers both.
            stale_sts = rule.handling == errors.CREDENTIAL and creds.security_token is not None
            if ((rule.handling == errors.REFRESH or stale_sts) and not refreshed
                    and self.credentials.refreshable):
                refreshed = True
                self.log.info("%s: %s: %s, refreshing RAM role credentials", product, action, code)
                self.credentials.refresh(stale=creds)
                continue
            raise self._error(rule, info, action, code, status, status_txt, message, creds,
                              secrets, attempt)

    def _send(self, client: AcsClient, product: str, action: str, request):
        """One HTTP exchange: (code, status, message, body); code None on a 2xx."""
        with self._lock:
            self.calls[f"{product}:{action}"] += 1
        try:
            return None, 200, "", client.do_action_with_exception(request)
        except ServerException as exc:
            return (exc.get_error_code() or "SDK.UnknownServerError", exc.get_http_status(),
                    exc.get_error_msg() or "", None)
        except ClientException as exc:
            if exc.get_error_code() != "SDK.HttpError":
                with self._lock:  # SDK refused before sending (bad params, credential)
                    self.calls[f"{product}:{action}"] -= 1
            return exc.get_error_code() or "SDK.ClientError", None, exc.get_error_msg() or "", None
        except IndexError:
            # SDK bug (§2.6): a 400 SignatureDoesNotMatch whose message has no ':' makes the
            # SDK's secret-mismatch check index past the split.
            return "SignatureDoesNotMatch", 400, "", None

    def _backoff(self, code: str, attempt: int) -> float:
        base = THROTTLE_BASE if code.startswith("Throttling") else BACKOFF_BASE
        ceiling = min(BACKOFF_CAP, base * (2 ** (attempt - 1)))
        return self._rng.uniform(ceiling / 2, ceiling)  # jitter: spread retries of parallel runs

    def _wait(self, delay: float, product: str, action: str) -> None:
        if self._stop is not None and self._sleep is time.sleep:
            if self._stop.wait(delay):
                raise ProviderError(f"{product}: {action} cancelled (shutting down)", retryable=True)
            return
        self._sleep(delay)
        if self._stop is not None and self._stop.is_set():
            raise ProviderError(f"{product}: {action} cancelled (shutting down)", retryable=True)

    def _error(self, rule: errors.ErrorRule, info: Product, action: str, code: str,
               status: int | None, status_txt: str, message: str, creds: Credentials,
               secrets: list[str], attempts: int) -> ProviderError:
        product = info.name
        secrets = [*secrets, creds.access_key_secret, creds.security_token or ""]
        key = f"AccessKeyId {key_prefix(creds.access_key_id)}"
        ram_action = f"{info.ram_prefix}:{action}"
        handling = rule.handling
        if handling == errors.PERMISSION:
            text = (f"{product}: {action} denied ({code}): the RAM policy of {key} must allow "
                    f"{ram_action}")
        elif handling == errors.CLOCK:
            text = (f"{product}: {action} rejected ({code}): this machine's clock is off by more "
                    f"than 15 minutes; fix the time (NTP) and retry")
        elif handling == errors.REFRESH:
            text = (f"{product}: {action} rejected the STS token ({code}) of {creds.describe()}; "
                    + ("refreshing it did not help" if self.credentials.refreshable
                       else "set a fresh security_token"))
        elif handling == errors.CREDENTIAL:
            text = f"{product}: {action} rejected the credentials ({code}, {status_txt}) of {creds.describe()}"
            if code in ("InvalidAccessKeyId.NotFound", "InvalidAccessKeyId"):
                text += ": the AccessKeyId does not exist"
            elif code == "InvalidAccessKeyId.Inactive":
                text += ": the AccessKey is disabled"
            elif code in ("SignatureDoesNotMatch", "InvalidAccessKeySecret", "IncompleteSignature"):
                text += ": the AccessKeySecret is wrong"
        else:
            detail = _network_reason(message) if code == "SDK.HttpError" else _scrub(message, secrets)
            if code in (NOT_JSON, "SDK.UnknownServerError"):
                text = f"{product}: {action}: {status_txt} with a body that is not JSON"
            else:
                text = f"{product}: {action} failed: {code} ({status_txt})"
                if detail:
                    text += f": {detail}"
            if rule.retryable:
                text += f" (gave up after {attempts} attempt{'s' if attempts != 1 else ''})"
        return rule.exc(_one_line(text, 400), code=code, retryable=rule.retryable)


def _product(product: str) -> Product:
    try:
        return PRODUCTS[product]
    except KeyError:
        raise ValueError(f"unknown Alibaba Cloud product {product!r} "
                         f"(known: {', '.join(PRODUCTS)})") from None


def _parse_body(body) -> dict | None:
    if body is None:
        return None
    try:
        data = json.loads(body.decode("utf-8") if isinstance(body, bytes | bytearray) else body)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


_NETWORK_REASONS = (
    ("refused", "connection refused"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
    ("remotedisconnected", "connection closed without a response"),
    ("aborted", "connection closed without a response"),
    ("reset", "connection reset"),
    ("name or service not known", "host name does not resolve"),
    ("nodename nor servname", "host name does not resolve"),
    ("certificate verify failed", "TLS certificate verification failed"),
    ("ssl", "TLS error"),
)


def _network_reason(message: str) -> str:
    """A short cause for an SDK.HttpError instead of requests' nested exception text."""
    low = message.lower()
    for needle, reason in _NETWORK_REASONS:
        if needle in low:
            return reason
    return _scrub(message, [], limit=120)


def _sensitive_values(request) -> list[str]:
    params = dict(request.get_query_params() or {})
    params.update(request.get_body_params() or {})
    return [str(v) for k, v in params.items() if k in SENSITIVE_PARAMS and v]


def _scrub(text: str, secrets: list[str], limit: int = MESSAGE_LIMIT) -> str:
    """Remove secrets from a message: everything after "string to sign" (a signature-mismatch
    message echoes every parameter), URL query strings, any PEM block (raw or URL-encoded),
    and any sensitive request value in its raw and URL-encoded forms."""
    if not text:
        return ""
    text = _SIGN_RE.sub("string to sign omitted", str(text))
    text = _QUERY_RE.sub("?…", text)
    for value in secrets:
        for form in {value, quote(value, safe="~"), quote_plus(value, safe="~"),
                     quote(quote(value, safe="~"), safe="~")}:
            if len(form) >= 4:
                text = text.replace(form, "[redacted]")
    text = _PEM_RE.sub("[redacted PEM]", text)
    return _one_line(text, limit)


def shared_api(ctx, account: str = "default") -> AliyunApi:
    """The run's one AliyunApi per account entry (one credential lookup, one client pool, one
    call counter), shared by every Alibaba Cloud provider through ``ctx.shared``.

    An entry with ``ram_role_arn`` gets credentials from STS AssumeRole, called through the
    AliyunApi of ``source_account`` (or of the entry's own keys); that API is looked up when
    the role is first assumed, not here (``ctx.shared`` is not re-entrant)."""
    key = "aliyun_api" if account == "default" else f"aliyun_api:{account}"
    return ctx.shared(key, lambda: _new_account_api(ctx, account))


def _new_account_api(ctx, account: str) -> AliyunApi:
    """A new AliyunApi for the account entry ``account`` (see :func:`shared_api`)."""
    entry = ctx.config.aliyun.account(account)
    if not entry.ram_role_arn:
        return AliyunApi(entry, log=ctx.log, stop=ctx.stop)
    if entry.source_account:
        source = entry.source_account
        base_text = f"the credentials of account {source}"

        def base_api() -> AliyunApi:
            return shared_api(ctx, source)
    else:
        base_text = f"the own credentials of account {account}"

        def base_api() -> AliyunApi:
            return ctx.shared(f"aliyun_api:{account}#own",
                              lambda: AliyunApi(dataclasses.replace(entry, ram_role_arn=None),
                                                log=ctx.log, stop=ctx.stop))

    def assume(request) -> dict:  # STS in the assuming entry's own region
        return base_api().call("sts", request, region=entry.region)

    assumed = AssumeRoleSource(entry, assume, base=base_text, log=ctx.log)
    return AliyunApi(entry, log=ctx.log, stop=ctx.stop, credentials=assumed)
