"""The one error table: codes -> (exception, retryable, handling)."""

import pytest

from providers.aliyun import errors
from providers.base import CredentialError, ProviderError


@pytest.mark.parametrize("code,status,exc,retryable,handling", [
    ("Throttling", 400, ProviderError, True, errors.BACKOFF),
    ("Throttling.User", 400, ProviderError, True, errors.BACKOFF),
    ("Throttling.Api", 503, ProviderError, True, errors.BACKOFF),
    ("ServiceUnavailable", 503, ProviderError, True, errors.BACKOFF),
    ("InternalError", 500, ProviderError, True, errors.BACKOFF),
    ("UnknownError", 500, ProviderError, True, errors.BACKOFF),
    ("SDK.HttpError", None, ProviderError, True, errors.BACKOFF),
    ("LastOperationNotFinished", 400, ProviderError, True, errors.BACKOFF),
    ("ServiceBusy", 403, ProviderError, True, errors.BACKOFF),
    ("SignatureNonceUsed", 400, ProviderError, True, errors.RETRY_ONCE),
    ("InvalidTimeStamp.Expired", 400, errors.ClockSkewError, False, errors.CLOCK),
    ("InvalidAccessKeyId.NotFound", 400, CredentialError, False, errors.CREDENTIAL),
    ("InvalidAccessKeyId.Inactive", 400, CredentialError, False, errors.CREDENTIAL),
    ("SignatureDoesNotMatch", 400, CredentialError, False, errors.CREDENTIAL),
    ("InvalidAccessKeySecret", 400, CredentialError, False, errors.CREDENTIAL),
    ("InvalidSecurityToken.Expired", 400, CredentialError, False, errors.REFRESH),
    ("InvalidSecurityToken.Malformed", 400, CredentialError, False, errors.REFRESH),
    ("Forbidden.RAM", 403, CredentialError, False, errors.PERMISSION),
    ("Forbidden.NoPermission", 403, CredentialError, False, errors.PERMISSION),
    ("NoPermission", 403, CredentialError, False, errors.PERMISSION),
    ("DomainRecordDuplicate", 400, ProviderError, False, errors.FAIL),
    ("SomethingNew", 400, ProviderError, False, errors.FAIL),
    ("SomethingNew", 502, ProviderError, True, errors.BACKOFF),
    ("SDK.UnknownServerError", 503, ProviderError, True, errors.BACKOFF),
    ("SDK.UnknownServerError", 400, ProviderError, False, errors.FAIL),
])
def test_classify(code, status, exc, retryable, handling):
    rule = errors.classify(code, status)
    assert (rule.exc, rule.retryable, rule.handling) == (exc, retryable, handling)


def test_credential_errors_are_provider_errors():
    assert issubclass(errors.ClockSkewError, CredentialError)
    assert issubclass(CredentialError, ProviderError)
