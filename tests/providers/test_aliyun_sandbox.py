"""AliyunApi through the official SDK against the sandbox: each SDK quirk we fix, observed on
the wire (the sandbox's call log), not by inspecting our own code."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest
from aliyunsdkalidns.request.v20150109.AddDomainRecordRequest import AddDomainRecordRequest
from aliyunsdkalidns.request.v20150109.DescribeDomainsRequest import DescribeDomainsRequest
from aliyunsdkcdn.request.v20180510.SetCdnDomainSSLCertificateRequest import (
    SetCdnDomainSSLCertificateRequest,
)
from aliyunsdkcloudapi.request.v20160714.DescribeApiGroupRequest import DescribeApiGroupRequest

from daemon.config import AliyunConfig
from providers.aliyun import AliyunApi, ClockSkewError
from providers.aliyun.client import BACKOFF_CAP
from providers.aliyun.credentials import CredentialSource
from providers.base import CredentialError, ProviderError

ROOT = Path(__file__).resolve().parents[2]
DEMO = tomllib.loads((ROOT / "sandbox" / "fixtures" / "demo.toml").read_text())
KEY_ID = DEMO["access_key"][0]["id"]
SECRET = DEMO["access_key"][0]["secret"]
LOG = logging.getLogger("test.aliyun.sandbox")


class Sleeps:
    """Injected sleep: records the backoff delays instead of waiting them out."""

    def __init__(self):
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def config(sb, **kw) -> AliyunConfig:
    base = dict(access_key_id=KEY_ID, access_key_secret=SECRET, region="cn-hangzhou",
                endpoints={p: sb.api_url for p in ("alidns", "cdn", "apigateway")})
    base.update(kw)
    return AliyunConfig(**base)


def make_api(sb, sleep=None, **kw) -> AliyunApi:
    max_attempts = kw.pop("max_attempts", 6)
    return AliyunApi(config(sb, **kw), log=LOG, sleep=sleep or Sleeps(), max_attempts=max_attempts)


def domains_request() -> DescribeDomainsRequest:
    req = DescribeDomainsRequest()
    req.set_PageSize(100)
    return req


def one_line(exc: Exception) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------- wire basics


def test_every_product_is_sent_as_post(sandbox):
    api = make_api(sandbox)
    assert api.call("alidns", domains_request())["TotalCount"] == 4
    req = DescribeApiGroupRequest()
    assert req.get_method() == "GET"  # the CloudAPI SDK default we override
    req.set_GroupId("abc123")
    assert api.call("apigateway", req, region="cn-shanghai")["GroupId"] == "abc123"
    log = sandbox.calls()
    assert [(c["action"], c["method"]) for c in log] == [("DescribeDomains", "POST"),
                                                        ("DescribeApiGroup", "POST")]
    assert log[1]["region"] == "cn-shanghai"
    assert api.calls == {"alidns:DescribeDomains": 1, "apigateway:DescribeApiGroup": 1}


def test_loopback_sandbox_works_with_a_proxy_set(sandbox, monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there
    assert make_api(sandbox).call("alidns", domains_request())["TotalCount"] == 4


def test_read_timeout_is_applied(sandbox):
    sandbox.set_faults("DescribeDomains", latency=1.0)
    sleeps = Sleeps()
    api = make_api(sandbox, sleeps, timeout=0.3, max_attempts=2)
    with pytest.raises(ProviderError) as info:
        api.call("alidns", domains_request())
    assert info.value.code == "SDK.HttpError" and info.value.retryable
    assert "gave up after 2 attempts" in one_line(info.value)
    assert api.calls["alidns:DescribeDomains"] == 2 and len(sleeps.delays) == 1


# --------------------------------------------------------------------------- retries


def test_seeded_30_percent_faults_converge(sandbox):
    sandbox.set_faults("*", throttle=0.1, unavailable=0.1, drop=0.05, internal=0.05, seed=7)
    sleeps = Sleeps()
    api = make_api(sandbox, sleeps)
    for _ in range(40):
        assert api.call("alidns", domains_request())["TotalCount"] == 4
    sent = api.calls["alidns:DescribeDomains"]
    assert sent > 40  # retries happened
    log = sandbox.calls(action="DescribeDomains")
    assert len(log) == sent  # every attempt reached the server, each counted once
    faults = [c["fault"] for c in log if c["fault"]]
    assert {"throttle", "unavailable", "drop", "internal"} <= set(faults)
    assert len(sleeps.delays) == sent - 40
    assert all(0 < d <= BACKOFF_CAP for d in sleeps.delays)


def test_backoff_grows_and_is_jittered(sandbox):
    sandbox.set_faults("DescribeDomains", script=["throttle", "throttle", "throttle", "ok"])
    sleeps = Sleeps()
    api = make_api(sandbox, sleeps)
    api.call("alidns", domains_request())
    assert api.calls["alidns:DescribeDomains"] == 4
    d1, d2, d3 = sleeps.delays
    assert 0.25 <= d1 <= 0.5 and 0.5 <= d2 <= 1.0 and 1.0 <= d3 <= 2.0


def test_retries_are_bounded(sandbox):
    sandbox.set_faults("DescribeDomains", unavailable=1.0)
    api = make_api(sandbox)
    with pytest.raises(ProviderError) as info:
        api.call("alidns", domains_request())
    exc = info.value
    assert not isinstance(exc, CredentialError)
    assert exc.code == "ServiceUnavailable" and exc.retryable
    assert one_line(exc).startswith("alidns: DescribeDomains failed: ServiceUnavailable (HTTP 503)")
    assert api.calls["alidns:DescribeDomains"] == 6 == len(sandbox.calls())


def test_stop_event_aborts_backoff(sandbox):
    import threading

    stop = threading.Event()
    stop.set()
    sandbox.set_faults("DescribeDomains", unavailable=1.0)
    api = AliyunApi(config(sandbox), log=LOG, stop=stop)  # real sleep: would wait if not stopped
    with pytest.raises(ProviderError, match="cancelled"):
        api.call("alidns", domains_request())
    assert api.calls["alidns:DescribeDomains"] == 1


def test_200_with_code_is_an_error(sandbox):
    sandbox.set_faults("DescribeDomains", script=["error_200", "ok"])
    api = make_api(sandbox)
    assert api.call("alidns", domains_request())["TotalCount"] == 4
    assert api.calls["alidns:DescribeDomains"] == 2
    sandbox.set_faults("DescribeDomains", error_200=1.0)
    with pytest.raises(ProviderError) as info:
        make_api(sandbox, max_attempts=2).call("alidns", domains_request())
    assert info.value.code == "InternalError" and "HTTP 200" in one_line(info.value)


def test_non_json_body_names_action_and_status(sandbox):
    sandbox.set_faults("DescribeDomains", malformed=1.0)
    api = make_api(sandbox, max_attempts=2)
    with pytest.raises(ProviderError) as info:
        api.call("alidns", domains_request())
    assert one_line(info.value).startswith("alidns: DescribeDomains: HTTP 200 with a body that is not JSON")


def test_signature_nonce_reuse_is_retried_once(sandbox, monkeypatch):
    from aliyunsdkcore.utils import parameter_helper

    real = parameter_helper.get_uuid
    api = make_api(sandbox)
    api.call("alidns", domains_request())  # the client exists; now its nonces repeat
    monkeypatch.setattr(parameter_helper, "get_uuid", lambda: "0123456789abcdef0123456789abcdef")
    api.call("alidns", domains_request())  # first use of that nonce
    with pytest.raises(ProviderError) as info:
        api.call("alidns", domains_request())
    assert info.value.code == "SignatureNonceUsed"
    assert api.calls["alidns:DescribeDomains"] == 4  # 1 + 1 + (1 + one retry)
    # a repeat followed by a fresh nonce succeeds on the retry
    nonces = iter(["0123456789abcdef0123456789abcdef"])
    monkeypatch.setattr(parameter_helper, "get_uuid", lambda: next(nonces, None) or real())
    api.call("alidns", domains_request())
    assert api.calls["alidns:DescribeDomains"] == 6


def test_clock_skew_is_one_clear_error(sandbox, monkeypatch):
    from aliyunsdkcore.utils import parameter_helper

    monkeypatch.setattr(parameter_helper, "get_iso_8061_date", lambda: "2001-01-01T00:00:00Z")
    api = make_api(sandbox)
    with pytest.raises(ClockSkewError) as info:
        api.call("alidns", domains_request())
    assert "clock" in one_line(info.value) and "InvalidTimeStamp.Expired" in str(info.value)
    assert len(sandbox.calls()) == 1


# --------------------------------------------------------------------------- credentials


def test_unknown_access_key_fails_at_once(sandbox):
    api = make_api(sandbox, access_key_id="LTAInosuchkey00000000")
    with pytest.raises(CredentialError) as info:
        api.call("alidns", domains_request())
    text = one_line(info.value)
    # the key is named by its prefix (issue #16), never in full
    assert "InvalidAccessKeyId.NotFound" in text and "AccessKeyId LTAInosu…" in text
    assert "LTAInosuchkey00000000" not in text
    assert SECRET not in text
    assert len(sandbox.calls()) == 1


def test_wrong_secret_fails_at_once(sandbox):
    api = make_api(sandbox, access_key_secret="not-the-secret")
    with pytest.raises(CredentialError) as info:
        api.call("alidns", domains_request())
    text = one_line(info.value)
    assert "AccessKeySecret is wrong" in text and "not-the-secret" not in text
    assert len(sandbox.calls()) == 1


def test_missing_ram_permission_names_the_action(sandbox):
    fixture = {**DEMO, "access_key": [{"id": "LTAIreadonly000000001", "secret": "ro-secret",
                                       "permissions": ["alidns:Describe*"]}]}
    sandbox.load_fixture(fixture)
    api = make_api(sandbox, access_key_id="LTAIreadonly000000001", access_key_secret="ro-secret")
    api.call("alidns", domains_request())
    req = AddDomainRecordRequest()
    req.set_DomainName("example.com")
    req.set_RR("_acme-challenge")
    req.set_Type("TXT")
    req.set_Value("x")
    with pytest.raises(CredentialError) as info:
        api.call("alidns", req)
    text = one_line(info.value)
    assert "Forbidden.RAM" in text and "alidns:AddDomainRecord" in text
    assert api.calls["alidns:AddDomainRecord"] == 1


def test_aliyun_env_vars_do_not_win(sandbox, monkeypatch, caplog):
    monkeypatch.setenv("ALIYUN_ACCESS_KEY_ID", "LTAIenvbogus000000001")
    monkeypatch.setenv("ALIYUN_ACCESS_KEY_SECRET", "bogus")
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        api = make_api(sandbox)
    api.call("alidns", domains_request())
    assert sandbox.calls()[-1]["access_key_id"] == KEY_ID
    assert any("not used" in r.getMessage() for r in caplog.records)


def test_alibaba_cloud_env_vars_are_a_source(sandbox, monkeypatch):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SECRET)
    monkeypatch.setenv("ALIYUN_ACCESS_KEY_ID", "LTAIenvbogus000000001")
    monkeypatch.setenv("ALIYUN_ACCESS_KEY_SECRET", "bogus")
    api = make_api(sandbox, access_key_id=None, access_key_secret=None)
    api.call("alidns", domains_request())
    assert sandbox.calls()[-1]["access_key_id"] == KEY_ID


def test_ram_role_credentials_from_metadata_and_refresh(sandbox, monkeypatch):
    from datetime import UTC, datetime, timedelta

    monkeypatch.setenv("ALIYUN_ACCESS_KEY_ID", "LTAIenvbogus000000001")  # must not win over STS
    monkeypatch.setenv("ALIYUN_ACCESS_KEY_SECRET", "bogus")
    shift = [timedelta(0)]
    cfg = config(sandbox, access_key_id=None, access_key_secret=None, ram_role="alicertd-role",
                 metadata_endpoint=sandbox.metadata_url)
    creds = CredentialSource(cfg, log=LOG, env={}, now=lambda: datetime.now(UTC) + shift[0])
    api = AliyunApi(cfg, log=LOG, credentials=creds, sleep=Sleeps())
    api.call("alidns", domains_request())
    api.call("alidns", domains_request())
    first = sandbox.calls(action="DescribeDomains")[-1]["access_key_id"]
    assert first.startswith("STS.")
    metadata = [c for c in sandbox.calls() if c["action"] == "MetadataRoleCredentials"]
    assert len(metadata) == 1  # fetched once, reused while far from Expiration
    shift[0] = timedelta(seconds=3600 - 290)  # inside 5 minutes of Expiration
    api.call("alidns", domains_request())
    metadata = [c for c in sandbox.calls() if c["action"] == "MetadataRoleCredentials"]
    assert len(metadata) == 2


def test_expired_sts_token_is_refreshed_once(sandbox):
    cfg = config(sandbox, access_key_id=None, access_key_secret=None, ram_role="alicertd-role",
                 metadata_endpoint=sandbox.metadata_url)
    api = AliyunApi(cfg, log=LOG, sleep=Sleeps())
    api.call("alidns", domains_request())
    old = sandbox.calls(action="DescribeDomains")[-1]["access_key_id"]
    assert sandbox.expire_sts_credentials() >= 1
    api.call("alidns", domains_request())
    log = sandbox.calls(action="DescribeDomains")
    assert log[-2]["code"] == "InvalidSecurityToken.Expired" and log[-2]["access_key_id"] == old
    assert log[-1]["status"] == 200 and log[-1]["access_key_id"] != old


def test_static_sts_token_rejected_names_the_fix(sandbox):
    role = sandbox.role_credentials("alicertd-role")
    sandbox.expire_sts_credentials()
    api = make_api(sandbox, access_key_id=role["AccessKeyId"], access_key_secret=role["AccessKeySecret"],
                   security_token=role["SecurityToken"])
    with pytest.raises(CredentialError) as info:
        api.call("alidns", domains_request())
    text = one_line(info.value)
    assert "InvalidSecurityToken.Expired" in text and "security_token" in text
    assert role["SecurityToken"] not in text and role["AccessKeySecret"] not in text
    assert len(sandbox.calls()) == 1


# --------------------------------------------------------------------------- secrets


KEY_PEM = ("-----BEGIN PRIVATE KEY-----\n"
           "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSandboxTestKeyMaterial0\n"
           "-----END PRIVATE KEY-----\n")
KEY_MARK = "SandboxTestKeyMaterial0"


def test_no_secret_in_any_message(sandbox, monkeypatch, caplog, capfd):
    """Private keys, the AccessKeySecret and STS tokens stay out of every log line (ours and the
    SDK's, even with its DEBUG switch on) and every exception message."""
    monkeypatch.setenv("DEBUG", "sdk")  # the SDK's own HTTP debug dump
    logging.getLogger("aliyunsdkcore").setLevel(logging.DEBUG)
    role = sandbox.role_credentials("alicertd-role")
    secrets = [KEY_MARK, SECRET, role["SecurityToken"], role["AccessKeySecret"]]

    def cdn_request():
        req = SetCdnDomainSSLCertificateRequest()
        req.set_DomainName("cdn.example.com")
        req.set_SSLProtocol("on")
        req.set_CertType("upload")
        req.set_CertName("x")
        req.set_SSLPub("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
        req.set_SSLPri(KEY_PEM)
        return req

    messages: list[str] = []
    scenarios = [
        ({}, None),  # the server rejects the bogus certificate
        ({"access_key_secret": "wrong-secret"}, None),  # signature mismatch
        ({}, {"drop": 1.0}),  # dropped connections: requests' error text carries the URL
        ({}, {"malformed": 1.0}),
        ({"access_key_id": role["AccessKeyId"], "access_key_secret": role["AccessKeySecret"],
          "security_token": role["SecurityToken"]}, {"unavailable": 1.0}),
    ]
    import socket

    with socket.socket() as s:  # a port nobody listens on: "connection refused", whose
        s.bind(("127.0.0.1", 0))  # requests error text quotes the whole URL with its query
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    scenarios.append(({"endpoints": {"cdn": closed}}, None))
    with caplog.at_level(logging.DEBUG):
        for kw, faults in scenarios:
            sandbox.clear_faults()
            if faults:
                sandbox.set_faults("SetCdnDomainSSLCertificate", **faults)
            api = make_api(sandbox, max_attempts=2, **kw)
            with pytest.raises(ProviderError) as info:
                api.call("cdn", cdn_request())
            messages.append(str(info.value))
            messages.append(repr(info.value))
    messages += [r.getMessage() for r in caplog.records]
    out, err = capfd.readouterr()
    messages += [out, err]
    assert any("SetCdnDomainSSLCertificate" in m for m in messages)
    for m in messages:
        for s in secrets:
            assert s not in m, f"secret leaked in: {m[:300]}"
