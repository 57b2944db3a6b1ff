"""AliyunApi request preparation, nothing sent: protocol, endpoint, method, timeouts, proxies,
signer choice, logger clamping."""

import logging

import pytest
from aliyunsdkalidns.request.v20150109.AddDomainRecordRequest import AddDomainRecordRequest
from aliyunsdkcdn.request.v20180510.SetCdnDomainSSLCertificateRequest import (
    SetCdnDomainSSLCertificateRequest,
)
from aliyunsdkcloudapi.request.v20160714.SetDomainCertificateRequest import SetDomainCertificateRequest
from aliyunsdkcore.auth.signers.access_key_signer import AccessKeySigner
from aliyunsdkcore.auth.signers.sts_token_signer import StsTokenSigner

from daemon.config import AliyunConfig
from providers.aliyun.client import AliyunApi, clamp_sdk_loggers, is_loopback
from providers.aliyun.credentials import Credentials

LOG = logging.getLogger("test.client")


def api(**kw):
    cfg = AliyunConfig(access_key_id="LTAIcfg", access_key_secret="cfgsecret", timeout=7.5, **kw)
    return AliyunApi(cfg, log=LOG)


@pytest.mark.parametrize("product,request_cls,region,host", [
    ("alidns", AddDomainRecordRequest, None, "alidns.aliyuncs.com"),
    ("cdn", SetCdnDomainSSLCertificateRequest, None, "cdn.aliyuncs.com"),
    ("apigateway", SetDomainCertificateRequest, "cn-shanghai", "apigateway.cn-shanghai.aliyuncs.com"),
])
def test_public_endpoints_are_https_and_post(product, request_cls, region, host):
    req = request_cls()
    ep = api().prepare(product, req, region=region)
    assert req.get_protocol_type() == "https" and ep.scheme == "https"
    assert req.endpoint == host
    assert req.get_method() == "POST"
    assert req.get_connect_timeout() == 5.0
    assert req.get_read_timeout() == 7.5


def test_cloudapi_defaults_to_get_without_us():
    assert SetDomainCertificateRequest().get_method() == "GET"  # the SDK quirk we fix


def test_loopback_override_keeps_http_and_port():
    a = api(endpoints={"alidns": "http://127.0.0.1:18080", "cdn": "https://localhost:8443"})
    req = AddDomainRecordRequest()
    ep = a.prepare("alidns", req)
    assert (req.get_protocol_type(), req.endpoint, ep.loopback) == ("http", "127.0.0.1:18080", True)
    req = SetCdnDomainSSLCertificateRequest()
    a.prepare("cdn", req)
    assert (req.get_protocol_type(), req.endpoint) == ("https", "localhost:8443")


def test_non_loopback_override_is_forced_to_https():
    a = api(endpoints={"apigateway": "http://gw.internal.example:8080"})
    req = SetDomainCertificateRequest()
    ep = a.prepare("apigateway", req)
    assert req.get_protocol_type() == "https" and ep.host == "gw.internal.example:8080"


def test_protocol_is_the_sdk_constant():
    # The SDK tests the protocol with ``is`` (http_response.py): an equal but distinct string
    # would silently fall back to plain HTTP.
    from aliyunsdkcore.http import protocol_type

    req = AddDomainRecordRequest()
    api(endpoints={"alidns": "HTTPS://alidns.example.test"}).prepare("alidns", req)
    assert req.get_protocol_type() is protocol_type.HTTPS


def test_unknown_product():
    with pytest.raises(ValueError, match="unknown"):
        api().prepare("ecs", AddDomainRecordRequest())


@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("::1", True), ("[::1]", True),
                                       ("localhost", True), ("127.8.9.1", True),
                                       ("alidns.aliyuncs.com", False), ("10.0.0.1", False)])
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


def test_loopback_bypasses_proxy_env(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    a = api(endpoints={"alidns": "http://127.0.0.1:18080"})
    ep = a.endpoint("alidns")
    proxies = a._proxies(ep)
    assert proxies == {"http": None, "https": None} and proxies  # truthy: the SDK keeps it
    assert a._proxies(a.endpoint("cdn")) == {"https": "http://proxy.invalid:3128"}
    monkeypatch.setenv("NO_PROXY", "cdn.aliyuncs.com")
    assert a._proxies(a.endpoint("cdn")) == {"http": None, "https": None}


def test_aliyun_env_cannot_override_our_credentials(monkeypatch, caplog):
    monkeypatch.setenv("ALIYUN_ACCESS_KEY_ID", "LTAIsdkenv")
    monkeypatch.setenv("ALIYUN_ACCESS_KEY_SECRET", "sdkenvsecret")
    with caplog.at_level(logging.WARNING, logger="test.client"):
        a = api()
    assert any("ALIYUN_ACCESS_KEY_ID" in r.getMessage() and "not used" in r.getMessage()
               for r in caplog.records)
    static = a._client("cn-hangzhou", Credentials("LTAIcfg", "cfgsecret"), {"http": None})
    assert isinstance(static._signer, AccessKeySigner)
    assert static._signer._credential.access_key_id == "LTAIcfg"
    sts = a._client("cn-hangzhou", Credentials("STS.x", "stssecret", "tok"), {"http": None})
    assert isinstance(sts._signer, StsTokenSigner)
    assert sts._signer._credential.sts_access_key_id == "STS.x"
    assert sts._signer._credential.sts_token == "tok"


def test_one_client_per_region_and_credentials():
    a = api()
    creds = Credentials("LTAIcfg", "cfgsecret")
    c1 = a._client("cn-hangzhou", creds, {"http": None})
    assert a._client("cn-hangzhou", creds, {"http": None}) is c1
    assert a._client("cn-shanghai", creds, {"http": None}) is not c1
    assert a._client("cn-hangzhou", Credentials("LTAIother", "x"), {"http": None}) is not c1


def test_sdk_loggers_clamped():
    import aliyunsdkcore.client  # noqa: F401
    import aliyunsdkcore.http.http_response  # noqa: F401  (sets itself to DEBUG at import)

    logging.getLogger("aliyunsdkcore.client").setLevel(logging.DEBUG)
    logging.getLogger("aliyunsdkcore").setLevel(logging.DEBUG)
    api()
    for name in ("aliyunsdkcore", "aliyunsdkcore.client", "aliyunsdkcore.http.http_response"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING, name
    assert not logging.getLogger("aliyunsdkcore.client").isEnabledFor(logging.DEBUG)
    clamp_sdk_loggers()  # idempotent
    assert logging.getLogger("aliyunsdkcore.http.http_response").level >= logging.WARNING


PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC+/=abc\n-----END PRIVATE KEY-----\n"


def test_scrub_removes_keys_queries_and_strings_to_sign():
    from urllib.parse import quote

    from providers.aliyun.client import _scrub

    enc = quote(PEM, safe="~")
    samples = [
        f"Specified signature is not matched. server string to sign is:POST&%2F&SSLPri%3D{quote(enc)}",
        f"HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /?SSLPri={enc}&X=1",
        f"bad key {PEM} here",
        f"bad key {enc} here",
    ]
    for text in samples:
        out = _scrub(text, [PEM, "tok-secret"])
        assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in out, out
        assert "\n" not in out
    assert "tok-secret" not in _scrub("token tok-secret leaked", ["tok-secret"])


def test_sdk_error_log_lines_are_scrubbed(caplog):
    from urllib.parse import quote

    api()  # installs the clamp + scrubber
    sdk_log = logging.getLogger("aliyunsdkcore.client")
    with caplog.at_level(logging.WARNING):
        sdk_log.error("ServerException occurred. Host:%s ServerException:%s", "h",
                      "SignatureDoesNotMatch server string to sign is:POST&SSLPri%3D" + quote(PEM))
        sdk_log.error("HttpError occurred. ClientException:%s",
                      "Max retries exceeded with url: /?SecurityToken=tok-secret&SSLPri=" + quote(PEM))
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "ServerException occurred" in text
    assert "MIIEvQIB" not in text and "tok-secret" not in text
