"""Which Alibaba Cloud credentials alicertd uses, decided by us and nobody else.

Precedence, first match wins:

1. ``[aliyun] access_key_id`` + ``access_key_secret`` (+ ``security_token`` → STS);
2. env ``ALIBABA_CLOUD_ACCESS_KEY_ID`` + ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``
   (+ ``ALIBABA_CLOUD_SECURITY_TOKEN``);
3. ``[aliyun] ram_role``: STS credentials of the ECS instance RAM role, fetched by us from the
   instance metadata service in security hardening mode (a token from ``PUT /latest/api/token``
   sent on every GET), falling back to a plain GET only where the token endpoint is unavailable.

Why not the SDK's own mechanisms: its ``EcsRamRoleCredential`` fetches without a timeout from a
hard-coded host and ignores ``Expiration``, and its ``SignerFactory`` lets env
``ALIYUN_ACCESS_KEY_ID``/``_SECRET`` silently override any credential object
(/work/shared/aliyun-api.md §2.4). The client hands what this module returns to the SDK
explicitly, so those variables never win; it warns when they are set.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests

from daemon.config import AliyunConfig
from daemon.logs import register_secret
from providers.base import CredentialError

ENV_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"
#: Read by the SDK's SignerFactory ahead of any credential object; never by alicertd.
SDK_ENV_OVERRIDES = ("ALIYUN_ACCESS_KEY_ID", "ALIYUN_ACCESS_KEY_SECRET")

METADATA_PATH = "/latest/meta-data/ram/security-credentials/"
METADATA_TIMEOUT = (2.0, 5.0)  # connect, read
#: Security hardening mode (docs/aliyun-api-notes.md, ECS metadata): PUT the token path with the
#: TTL header, then send the token on every GET. 21600 s is the documented maximum and what
#: Alibaba's own alibabacloud-credentials client asks for.
TOKEN_PATH = "/latest/api/token"
TOKEN_TTL_HEADER = "X-aliyun-ecs-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aliyun-ecs-metadata-token"
TOKEN_TTL_SECONDS = 21600
#: PUT answers meaning "this metadata service has no token endpoint": only then (or when the PUT
#: cannot be sent at all) is a plain GET tried. Any other answer to the PUT is reported as is: a
#: plain GET would only hide it (a hardened instance refuses plain GETs).
TOKEN_ENDPOINT_ABSENT = frozenset({404, 405, 501})
#: A GET answered with one of these while carrying a token: the token was refused (expired or
#: revoked); one fresh token is tried before giving up. Undocumented for ECS: our guess, safe
#: either way.
TOKEN_REFUSED = frozenset({401, 403})
REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class Credentials:
    """One usable key. ``repr``/``str`` show the source and AccessKeyId only."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    source: str = "config"
    expiration: datetime | None = None  # UTC; only for RAM-role (metadata) credentials

    def __post_init__(self) -> None:
        # Every key is born here, from the config, the instance metadata or AssumeRole, so this
        # is the one place that tells the log filter what to hide: an SDK or urllib3 message
        # quoting a signed request can then never print the secret or the token.
        register_secret(self.access_key_secret)
        register_secret(self.security_token)

    def describe(self) -> str:
        """For logs: where the key came from and its AccessKeyId prefix, nothing secret."""
        kind = " (STS)" if self.security_token else ""
        return f"{self.source}{kind}, AccessKeyId {key_prefix(self.access_key_id)}"

    def __str__(self) -> str:
        return self.describe()


#: Characters of an AccessKeyId shown in logs and errors: enough to tell keys apart in the RAM
#: console (ids start "LTAI" or "STS."), not the whole identifier.
KEY_PREFIX_CHARS = 8


def key_prefix(access_key_id: str) -> str:
    """``LTAI5tAb…``: the AccessKeyId as errors and logs name it."""
    if len(access_key_id) <= KEY_PREFIX_CHARS:
        return access_key_id
    return access_key_id[:KEY_PREFIX_CHARS] + "…"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _parse_expiration(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class CredentialSource:
    """Chooses the credential source once (no network), hands out current credentials and
    refreshes RAM-role credentials 5 minutes before ``Expiration`` or on demand (an API call
    failed with an expired token). Thread-safe."""

    def __init__(self, config: AliyunConfig, *, log: logging.Logger,
                 env: Mapping[str, str] | None = None, now: Callable[[], datetime] = _utcnow,
                 session: requests.Session | None = None):
        self._log = log
        self._now = now
        self._lock = threading.Lock()
        self._current: Credentials | None = None
        self._problem: str | None = None
        self.role: str | None = None
        self._metadata_base = config.metadata_endpoint.rstrip("/")
        env = os.environ if env is None else env
        self.account = config.name
        if config.name != "default":
            env = {}  # the ALIBABA_CLOUD_* variables are [aliyun]'s, never another entry's
        where = "[aliyun]" if config.name == "default" else f"[aliyun.accounts.{config.name}]"
        if config.access_key_id or config.access_key_secret:
            if not (config.access_key_id and config.access_key_secret):
                self._problem = ("aliyun: set both access_key_id and access_key_secret in [aliyun] "
                                 "(one of them is empty)")
            else:
                self._current = Credentials(config.access_key_id, config.access_key_secret,
                                            config.security_token or None, source=f"config {where}")
        elif env.get(ENV_KEY_ID) or env.get(ENV_KEY_SECRET):
            if not (env.get(ENV_KEY_ID) and env.get(ENV_KEY_SECRET)):
                self._problem = (f"aliyun: set both {ENV_KEY_ID} and {ENV_KEY_SECRET} "
                                 "(one of them is empty)")
            else:
                self._current = Credentials(env[ENV_KEY_ID], env[ENV_KEY_SECRET],
                                            env.get(ENV_TOKEN) or None, source=f"env {ENV_KEY_ID}")
        elif config.ram_role:
            self.role = config.ram_role
        else:
            self._problem = (
                "aliyun: no credentials: set access_key_id and access_key_secret in [aliyun], "
                f"or env {ENV_KEY_ID} and {ENV_KEY_SECRET}, or ram_role in [aliyun] on an ECS "
                "instance with a RAM role")
        self._session = session
        self._fallback_logged = False

    # -- what callers use ------------------------------------------------------

    @property
    def refreshable(self) -> bool:
        return self.role is not None

    def describe(self) -> str:
        """The chosen source, without fetching anything."""
        if self._problem:
            return "no credentials"
        if self.role is not None:
            return f"RAM role {self.role} via instance metadata {self._metadata_base}"
        assert self._current is not None
        return self._current.describe()

    def get(self) -> Credentials:
        """Current credentials; fetches/refreshes RAM-role credentials when due."""
        if self._problem:
            raise CredentialError(self._problem)
        with self._lock:
            if self.role is not None and self._due():
                self._current = self._fetch_role(keep_on_failure=True)
            assert self._current is not None
            return self._current

    def refresh(self, stale: Credentials | None = None) -> Credentials | None:
        """Fetch new RAM-role credentials now (the API said the token expired); None when the
        source cannot be refreshed (static keys). ``stale`` avoids a second fetch when another
        thread already refreshed the credentials that failed."""
        if self.role is None:
            return None
        with self._lock:
            if stale is not None and self._current is not None and self._current != stale:
                return self._current
            self._current = self._fetch_role(keep_on_failure=False)
            return self._current

    # -- RAM role ----------------------------------------------------------------

    def _due(self) -> bool:
        cur = self._current
        if cur is None:
            return True
        if cur.expiration is None:
            return False
        return self._now() >= cur.expiration - REFRESH_MARGIN

    def _fetch_role(self, *, keep_on_failure: bool) -> Credentials:
        try:
            return self._fetch_role_once()
        except CredentialError:
            cur = self._current
            if keep_on_failure and cur is not None and (cur.expiration is None
                                                        or self._now() < cur.expiration):
                self._log.warning("aliyun: refreshing RAM role %s credentials failed; the current "
                                  "ones stay valid until %s", self.role, cur.expiration)
                return cur
            raise

    def _http(self) -> requests.Session:
        session = self._session
        if session is None:
            # The metadata service is link-local: never through HTTP(S)_PROXY.
            session = self._session = requests.Session()
            session.trust_env = False
        return session

    def _metadata_token(self) -> str | None:
        """A hardened-mode token, or None when the token endpoint is unavailable (no such
        endpoint, or no connection for the PUT): then the caller uses a plain GET, logged once.
        Alibaba's own client falls back after any failed PUT; we do not after an answer that
        names another problem, because on a hardened instance the plain GET would hide it."""
        role = self.role
        try:
            resp = self._http().put(f"{self._metadata_base}{TOKEN_PATH}",
                                    headers={TOKEN_TTL_HEADER: str(TOKEN_TTL_SECONDS)},
                                    timeout=METADATA_TIMEOUT, allow_redirects=False)
        except requests.ConnectionError as exc:  # refused, unreachable, connect timeout
            self._note_fallback(f"the token request failed ({type(exc).__name__})")
            return None
        except requests.RequestException as exc:  # connected, then no answer: not "unavailable"
            raise CredentialError(
                f"aliyun: instance metadata {self._metadata_base} did not answer the token "
                f"request (PUT {TOKEN_PATH}) for RAM role {role}: {type(exc).__name__}",
                retryable=True) from None
        if resp.status_code in TOKEN_ENDPOINT_ABSENT:
            self._note_fallback(f"the token endpoint answered HTTP {resp.status_code}")
            return None
        if resp.status_code != 200:
            raise CredentialError(
                f"aliyun: instance metadata {self._metadata_base} answered HTTP {resp.status_code} "
                f"to the token request (PUT {TOKEN_PATH}) for RAM role {role}",
                retryable=resp.status_code >= 500)
        token = (resp.text or "").strip()
        if not token:
            raise CredentialError(f"aliyun: instance metadata {self._metadata_base} returned an "
                                  f"empty token (PUT {TOKEN_PATH}) for RAM role {role}")
        return token

    def _note_fallback(self, why: str) -> None:
        if not self._fallback_logged:
            self._fallback_logged = True
            self._log.warning("aliyun: instance metadata %s offers no security hardening mode "
                              "token (%s); reading RAM role %s credentials with a plain GET",
                              self._metadata_base, why, self.role)

    def _get_role(self, url: str, token: str | None) -> requests.Response:
        headers = {TOKEN_HEADER: token} if token is not None else {}
        try:
            return self._http().get(url, headers=headers, timeout=METADATA_TIMEOUT,
                                    allow_redirects=False)
        except requests.RequestException as exc:
            raise CredentialError(
                f"aliyun: cannot fetch RAM role {self.role} credentials from instance metadata "
                f"{self._metadata_base}: {type(exc).__name__}", retryable=True) from None

    def _fetch_role_once(self) -> Credentials:
        role = self.role
        url = f"{self._metadata_base}{METADATA_PATH}{role}"
        token = self._metadata_token()
        resp = self._get_role(url, token)
        if token is not None and resp.status_code in TOKEN_REFUSED:
            token = self._metadata_token()  # the token itself was refused: one fresh one
            resp = self._get_role(url, token)
        if resp.status_code in TOKEN_REFUSED:
            how = ("refused its own token" if token is not None else
                   "refused a plain GET; the instance requires security hardening mode but "
                   f"the token endpoint (PUT {TOKEN_PATH}) was unavailable")
            raise CredentialError(f"aliyun: instance metadata {self._metadata_base} {how} "
                                  f"(HTTP {resp.status_code}) for RAM role {role}")
        if resp.status_code == 404:
            raise CredentialError(f"aliyun: RAM role {role} is not attached to this instance "
                                  f"(metadata {self._metadata_base} answered 404)")
        if resp.status_code != 200:
            raise CredentialError(f"aliyun: instance metadata {self._metadata_base} answered HTTP "
                                  f"{resp.status_code} for RAM role {role}",
                                  retryable=resp.status_code >= 500)
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise CredentialError(f"aliyun: instance metadata answer for RAM role {role} is not "
                                  "a JSON object")
        if data.get("Code") != "Success":
            raise CredentialError(f"aliyun: instance metadata refused credentials for RAM role "
                                  f"{role}: Code {str(data.get('Code'))[:64]!r}")
        key_id, secret, token = (data.get("AccessKeyId"), data.get("AccessKeySecret"),
                                 data.get("SecurityToken"))
        if not (isinstance(key_id, str) and isinstance(secret, str) and isinstance(token, str)
                and key_id and secret and token):
            raise CredentialError(f"aliyun: instance metadata answer for RAM role {role} lacks "
                                  "AccessKeyId, AccessKeySecret or SecurityToken")
        expiration = _parse_expiration(data.get("Expiration"))
        label = f"RAM role {role}" if self.account == "default" else \
            f"account {self.account}: RAM role {role}"
        creds = Credentials(key_id, secret, token, source=label, expiration=expiration)
        self._log.info("aliyun: fetched credentials of RAM role %s (AccessKeyId %s, expires %s)",
                       role, key_id, expiration.isoformat() if expiration else "unknown")
        return creds


# --------------------------------------------------------------------------- STS AssumeRole

STS_VERSION = "2015-04-01"
#: AssumeRole DurationSeconds: "Minimum value: 900 ... Default value: 3600" (alibabacloud-sts20150401
#: AssumeRoleRequest). 3600 is asked for explicitly; the role's MaxSessionDuration may not be lower.
ASSUME_ROLE_SECONDS = 3600


class AssumeRoleSource:
    """Credentials of an account entry's ``ram_role_arn``, from STS ``AssumeRole`` called with
    the credentials of ``source_account`` (or of the entry itself): ``call`` sends one STS
    request through that account's AliyunApi (retries, error mapping, its own refresh).

    The same interface as :class:`CredentialSource`: assumed credentials are shared by every
    caller of this account for the run and refreshed 5 minutes before ``Expiration`` or on
    demand (the API said the token expired). A failure is a CredentialError naming the
    account entry and the role, for this account only."""

    refreshable = True

    def __init__(self, config: AliyunConfig, call: Callable[[object], dict], *,
                 base: str, log: logging.Logger, now: Callable[[], datetime] = _utcnow):
        if not config.ram_role_arn:
            raise ValueError(f"account {config.name} has no ram_role_arn")
        self.account = config.name
        self.arn = config.ram_role_arn
        self.session_name = config.role_session_name
        self._call = call
        self._base = base
        self._log = log
        self._now = now
        self._lock = threading.Lock()
        self._current: Credentials | None = None
        self.role = config.ram_role_arn

    def describe(self) -> str:
        return f"account {self.account}: role {self.arn} assumed with {self._base}"

    def get(self) -> Credentials:
        with self._lock:
            cur = self._current
            if cur is None or (cur.expiration is not None
                               and self._now() >= cur.expiration - REFRESH_MARGIN):
                self._current = self._assume(keep=cur)
            return self._current

    def refresh(self, stale: Credentials | None = None) -> Credentials:
        with self._lock:
            if stale is not None and self._current is not None and self._current != stale:
                return self._current
            self._current = self._assume(keep=None)
            return self._current

    def _request(self):
        from aliyunsdkcore.request import CommonRequest  # the SDK's generic RPC request

        request = CommonRequest(domain="sts.aliyuncs.com", version=STS_VERSION,
                                action_name="AssumeRole")
        request.add_query_param("RoleArn", self.arn)
        request.add_query_param("RoleSessionName", self.session_name)
        request.add_query_param("DurationSeconds", str(ASSUME_ROLE_SECONDS))
        return request

    def _assume(self, *, keep: Credentials | None) -> Credentials:
        try:
            body = self._call(self._request())
        except Exception as exc:  # ProviderError/CredentialError from the STS call
            if keep is not None and keep.expiration is not None and self._now() < keep.expiration:
                self._log.warning("aliyun: account %s: renewing role %s failed (%s); the current "
                                  "credentials stay valid until %s", self.account, self.arn,
                                  exc, keep.expiration.isoformat())
                return keep
            retryable = bool(getattr(exc, "retryable", False))
            raise CredentialError(f"aliyun: account {self.account}: cannot assume role {self.arn} "
                                  f"with {self._base}: {exc}", retryable=retryable) from None
        creds = body.get("Credentials") if isinstance(body, dict) else None
        if not isinstance(creds, dict):
            raise CredentialError(f"aliyun: account {self.account}: AssumeRole answer for "
                                  f"{self.arn} has no Credentials")
        key_id, secret, token = (creds.get("AccessKeyId"), creds.get("AccessKeySecret"),
                                 creds.get("SecurityToken"))
        if not all(isinstance(v, str) and v for v in (key_id, secret, token)):
            raise CredentialError(f"aliyun: account {self.account}: AssumeRole answer for "
                                  f"{self.arn} lacks AccessKeyId, AccessKeySecret or SecurityToken")
        expiration = _parse_expiration(creds.get("Expiration"))
        result = Credentials(key_id, secret, token, expiration=expiration,
                             source=f"account {self.account}: role {self.arn}")
        self._log.info("aliyun: account %s: assumed role %s (AccessKeyId %s, expires %s)",
                       self.account, self.arn, key_prefix(key_id),
                       expiration.isoformat() if expiration else "unknown")
        return result
