"""Alibaba Cloud error codes, decided once: which exception, retryable or not, and how the
access layer reacts (back off, retry once, refresh the STS token, stop).

Why one table: the same code means the same thing whichever product returns it, and the
decision "does retrying help?" must not be re-made (differently) at every call site. Each
code's source (Alibaba's error tables, the legacy SDK, or "undocumented: observed in ...") is in
docs/aliyun-api-notes.md. A code missing from the table falls back on its HTTP status: 5xx and
429 are retried, everything else fails at once -- so an undocumented code listed here only ever
makes alicertd back off or stop, never assume that something happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.base import CredentialError, ProviderError

# What AliyunApi.call does with a failure.
BACKOFF = "backoff"  # wait (bounded, jittered, exponential) and send again
RETRY_ONCE = "retry-once"  # send again at once, a single time (fresh nonce/timestamp)
REFRESH = "refresh"  # refresh STS credentials once (RAM role), then send again
CREDENTIAL = "credential"  # the key pair is wrong or inactive: stop using it
PERMISSION = "permission"  # the RAM policy lacks the action: name it
CLOCK = "clock"  # the local clock is off by more than the gateway tolerates
FAIL = "fail"  # a definite answer about this request: report it


class ClockSkewError(CredentialError):
    """The API gateway rejected the request timestamp: this machine's clock is off. Every call
    fails the same way until the clock is fixed, hence a CredentialError (stop using the API)."""


@dataclass(frozen=True)
class ErrorRule:
    exc: type[ProviderError]
    retryable: bool
    handling: str


_BACKOFF = ErrorRule(ProviderError, True, BACKOFF)
_FAIL = ErrorRule(ProviderError, False, FAIL)
_CREDENTIAL = ErrorRule(CredentialError, False, CREDENTIAL)
_PERMISSION = ErrorRule(CredentialError, False, PERMISSION)

#: Exact codes. Product-specific codes that callers branch on are listed too (as FAIL), so the
#: reader sees every code alicertd knows in one place.
ERROR_TABLE: dict[str, ErrorRule] = {
    # transient: the same request may succeed later
    "Throttling": _BACKOFF,
    "ServiceUnavailable": _BACKOFF,
    "ServiceUnavailableTemporary": _BACKOFF,
    "InternalError": _BACKOFF,
    "UnknownError": _BACKOFF,
    "SDK.HttpError": _BACKOFF,  # timeout, reset, refused, dropped connection (ClientException)
    "SDK.UnknownServerError": _FAIL,  # non-JSON error body: status decides (see classify)
    "SDK.InvalidResponse": _BACKOFF,  # ours: a 2xx whose body is not JSON (a proxy's page)
    "LastOperationNotFinished": _BACKOFF,  # Alidns: a change on the zone is still running (undocumented)
    "ServiceBusy": _BACKOFF,  # CDN (403): the domain is still being configured
    "RepeatedCommit": _BACKOFF,  # CloudAPI (400, "Resubmit request"): SetDomainCertificate is idempotent
    # the request itself was refused for a reason a fresh signature fixes
    "SignatureNonceUsed": ErrorRule(ProviderError, True, RETRY_ONCE),
    # the clock
    "InvalidTimeStamp.Expired": ErrorRule(ClockSkewError, False, CLOCK),
    # the credentials
    "InvalidAccessKeyId.NotFound": _CREDENTIAL,
    "InvalidAccessKeyId.Inactive": _CREDENTIAL,
    "InvalidAccessKeyId": _CREDENTIAL,
    "SignatureDoesNotMatch": _CREDENTIAL,
    "IncompleteSignature": _CREDENTIAL,
    "InvalidAccessKeySecret": _CREDENTIAL,  # the SDK's rename of SignatureDoesNotMatch
    "SDK.InvalidCredential": _CREDENTIAL,
    # permissions
    "Forbidden.RAM": _PERMISSION,
    "NoPermission": _PERMISSION,
    # definite answers (documented); callers branch on the first two (exc.code), and re-read
    # before acting on them
    "DomainRecordDuplicate": _FAIL,  # Alidns: identical record exists -> re-read, adopt if ours
    "DomainRecordNotBelongToUser": _FAIL,  # Alidns: RecordId not in the account -> delete is done
    "DomainRecordConflict": _FAIL,
    "InvalidDomainName.NoExist": _FAIL,
    "IncorrectDomainUser": _FAIL,
    "RecordForbidden.DNSChange": _FAIL,
    "InvalidDomain.NotFound": _FAIL,  # CDN, DCDN
    "Certificate.Duplicated": _FAIL,  # ESA SetCertificate: on the site already -> re-read
    "CertQuotaCheckFailed": _FAIL,  # ESA: the plan's certificate quota is full (never make room)
    "InvalidParameter.SiteId": _FAIL,  # ESA: no such site
    # OSS (REST; providers/oss.py classifies its codes here too)
    "AccessDenied": _PERMISSION,  # OSS 403: the RAM policy lacks the action
    "RequestTimeTooSkewed": ErrorRule(ClockSkewError, False, CLOCK),  # OSS 403: > 15 min off
    "AccessKeyIdAndSecurityTokenNotMatch": _CREDENTIAL,  # OSS 403
    "NoSuchBucket": _FAIL,  # OSS 404
    "NotFoundApiGroup": _FAIL,  # CloudAPI: its documented NotFound%s (400)
    # ALB/NLB: the listener is busy with another change; the provider waits for Running and
    # re-reads (a refused change changed nothing). ALB spells it .Listener, NLB .listener.
    "IncorrectStatus.Listener": _FAIL,
    "IncorrectStatus.listener": _FAIL,
    "ResourceInConfiguring.Listener": _FAIL,
    "Conflict.Lock": _FAIL,
    "SystemBusy": _BACKOFF,  # NLB: "System is busy, please try again later."
    "ResourceNotFound.Listener": _FAIL,
    "ResourceNotFound.listener": _FAIL,
    "ResourceNotFound.Certificate": _FAIL,
    "ResourceAlreadyAssociated.Certificate": _FAIL,  # ALB/NLB: the certificate is there already
    "CertificateAndPrivateKeyIsRefered": _FAIL,  # CLB: DeleteServerCertificate of one in use
    "ServerCertificateId.NotFound": _FAIL,
    "MissingParameter": _FAIL,
    "InvalidParameter": _FAIL,
    "SDK.InvalidParams": _FAIL,
}

#: Families, matched by plain prefix after the exact table.
ERROR_PREFIXES: tuple[tuple[str, ErrorRule], ...] = (
    ("InvalidSecurityToken", ErrorRule(CredentialError, False, REFRESH)),  # .Expired/.Malformed/…
    ("Throttling", _BACKOFF),  # Throttling.User, Throttling.Api, Throttling.Tps
    ("Forbidden", _PERMISSION),  # Forbidden.RAM, Forbidden.NoPermission, Forbidden.AccessDenied…
)


def classify(code: str, http_status: int | None = None) -> ErrorRule:
    """The rule for ``code`` (exact, then prefix, then by HTTP status)."""
    rule = ERROR_TABLE.get(code)
    if rule is not None and code != "SDK.UnknownServerError":
        return rule
    for prefix, prule in ERROR_PREFIXES:
        if code.startswith(prefix):
            return prule
    if http_status is not None and (http_status >= 500 or http_status == 429):
        return _BACKOFF
    return _FAIL
