"""STS AssumeRole credentials per account entry (issue #16): pure, with the STS call injected."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest

from daemon.config import AliyunConfig
from providers.aliyun.credentials import AssumeRoleSource, CredentialSource
from providers.base import CredentialError, ProviderError

LOG = logging.getLogger("test.assume")
ARN = "acs:ram::1234567890123456:role/alicertd-deploy"
ENTRY = AliyunConfig(name="media", ram_role_arn=ARN, source_account="default",
                     role_session_name="alicertd")


def answer(key_id="STS.a", expires=None):
    exp = (expires or datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"RequestId": "r", "AssumedRoleUser": {"Arn": f"{ARN}/alicertd", "AssumedRoleId": "1:x"},
            "Credentials": {"AccessKeyId": key_id, "AccessKeySecret": "sec", "SecurityToken": "tok",
                            "Expiration": exp}}


class FakeSts:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        a = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(a, Exception):
            raise a
        return a


def test_assume_role_request_and_caching():
    sts = FakeSts(answer("STS.one"))
    src = AssumeRoleSource(ENTRY, sts, base="the credentials of account default", log=LOG)
    creds = src.get()
    assert (creds.access_key_id, creds.security_token) == ("STS.one", "tok")
    assert "account media" in creds.describe() and "sec" not in creds.describe()
    req = sts.requests[0]
    assert (req.get_action_name(), req.get_version()) == ("AssumeRole", "2015-04-01")
    assert req.get_query_params() == {"RoleArn": ARN, "RoleSessionName": "alicertd",
                                      "DurationSeconds": "3600"}
    src.get()
    assert len(sts.requests) == 1  # shared until close to Expiration
    assert src.refreshable and "assumed with the credentials of account default" in src.describe()


def test_refreshed_five_minutes_before_expiration_and_on_demand():
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    sts = FakeSts(answer("STS.one", now[0] + timedelta(minutes=30)),
                  answer("STS.two", now[0] + timedelta(hours=2)),
                  answer("STS.three", now[0] + timedelta(hours=3)))
    src = AssumeRoleSource(ENTRY, sts, base="b", log=LOG, now=lambda: now[0])
    one = src.get()
    now[0] += timedelta(minutes=26)
    two = src.get()
    assert two.access_key_id == "STS.two"
    assert src.refresh(stale=one) is two  # someone already refreshed
    assert src.refresh(stale=two).access_key_id == "STS.three"


def test_untrusted_role_is_a_credential_error_naming_account_and_role():
    denied = CredentialError("sts: AssumeRole denied (NoPermission): the RAM policy of "
                             "AccessKeyId STS.x must allow sts:AssumeRole")
    src = AssumeRoleSource(ENTRY, FakeSts(denied), base="the credentials of account default", log=LOG)
    with pytest.raises(CredentialError) as info:
        src.get()
    msg = str(info.value)
    assert msg.startswith("aliyun: account media: cannot assume role " + ARN)
    assert "NoPermission" in msg and not info.value.retryable


def test_failed_renewal_keeps_still_valid_credentials():
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    sts = FakeSts(answer("STS.one", now[0] + timedelta(minutes=10)),
                  ProviderError("sts: AssumeRole failed: ServiceUnavailable (HTTP 503)", retryable=True))
    src = AssumeRoleSource(ENTRY, sts, base="b", log=LOG, now=lambda: now[0])
    src.get()
    now[0] += timedelta(minutes=6)
    assert src.get().access_key_id == "STS.one"
    now[0] += timedelta(minutes=5)
    with pytest.raises(CredentialError) as info:
        src.get()
    assert info.value.retryable


@pytest.mark.parametrize("body", [{}, {"Credentials": {"AccessKeyId": "STS.a"}}, {"Credentials": "x"}])
def test_malformed_answers(body):
    with pytest.raises(CredentialError, match="account media"):
        AssumeRoleSource(ENTRY, FakeSts(body), base="b", log=LOG).get()


def test_entries_never_read_the_default_accounts_env():
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIenv", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s"}
    assert CredentialSource(AliyunConfig(), log=LOG, env=env).get().access_key_id == "LTAIenv"
    with pytest.raises(CredentialError):
        CredentialSource(AliyunConfig(name="media"), log=LOG, env=env).get()
    own = CredentialSource(AliyunConfig(name="media", access_key_id="LTAIm", access_key_secret="x"),
                           log=LOG, env=env).get()
    assert own.describe() == "config [aliyun.accounts.media], AccessKeyId LTAIm"


def test_shared_api_per_account_and_chained_roles():
    """shared_api(ctx, account): one API per entry; the assumed role's STS call goes through the
    source account's API (looked up lazily: ctx.shared is not re-entrant)."""
    from providers.aliyun import client as client_mod
    from providers.base import ProviderContext
    from tests.providers.conftest import make_config

    aliyun = AliyunConfig(access_key_id="LTAIdef", access_key_secret="x",
                          accounts={"media": ENTRY})
    import pathlib
    ctx = ProviderContext(config=make_config(pathlib.Path("/tmp"), aliyun=aliyun), journal=None,
                          log=LOG, stop=threading.Event())
    default_api = client_mod.shared_api(ctx)
    media_api = client_mod.shared_api(ctx, "media")
    assert client_mod.shared_api(ctx, "media") is media_api and media_api is not default_api
    assert media_api.config.name == "media" and media_api.credentials.refreshable
    sent = []
    default_api.call = lambda product, request, region=None: sent.append((product, region)) or answer()
    assert media_api.credentials.get().access_key_id == "STS.a"
    assert sent == [("sts", "cn-hangzhou")]


def test_default_entry_can_assume_a_role_with_its_own_keys():
    import pathlib

    from providers.aliyun import client as client_mod
    from providers.base import ProviderContext
    from tests.providers.conftest import make_config

    aliyun = AliyunConfig(access_key_id="LTAIdef", access_key_secret="x", ram_role_arn=ARN)
    ctx = ProviderContext(config=make_config(pathlib.Path("/tmp"), aliyun=aliyun), journal=None,
                          log=LOG, stop=threading.Event())
    api = client_mod.shared_api(ctx)
    assert isinstance(api.credentials, AssumeRoleSource)
    assert "own credentials of account default" in api.credentials.describe()
    # the entry's own-key API is built lazily, when the role is first assumed
    assert "aliyun_api:default#own" not in ctx._resources


def test_errors_and_logs_name_only_the_access_key_id_prefix():
    long_id = "LTAI5tAbCdEfGhIjKlMnOpQr"
    own = CredentialSource(AliyunConfig(name="media", access_key_id=long_id, access_key_secret="x"),
                           log=LOG, env={})
    text = own.describe()
    assert "LTAI5tAb…" in text and long_id not in text and "[aliyun.accounts.media]" in text
