"""The sandbox's OSS: its XML holds to the alibabacloud-oss-v2 model classes (OSS has no RPC
model for the conformance suite), and its own Signature V4 check refuses what it must."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import alibabacloud_oss_v2 as oss
import pytest
import requests
from alibabacloud_oss_v2.models import bucket_cname as models
from alibabacloud_oss_v2.retry import NopRetryer

from sandbox import Sandbox
from sandbox import oss_signature as v4
from tests.providers.certs import make_bundle

AK, SECRET = "LTAIossTest0000000001", "oss-test-secret"
FIXTURE = {"access_key": [{"id": AK, "secret": SECRET, "permissions": ["*"]}],
           "oss_bucket": [{"name": "assets", "region": "cn-hangzhou", "cnames": ["cdn.example.com"]}]}


@pytest.fixture
def sb():
    with Sandbox(FIXTURE, dns2_port=None) as sandbox:
        yield sandbox


def client(sb, secret=SECRET):
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(AK, secret)
    cfg.region, cfg.endpoint, cfg.use_path_style = "cn-hangzhou", sb.api_url, True
    cfg.retryer = NopRetryer()
    return oss.Client(cfg)


def _check_shape(el: ET.Element, model: type, path: str) -> list[str]:
    """Every child element is a field the model declares (by its XML name), recursively."""
    fields = {spec["rename"]: spec for spec in model._attribute_map.values()}
    problems = []
    for child in el:
        spec = fields.get(child.tag)
        if spec is None:
            problems.append(f"{path}/{child.tag}: not in {model.__name__}")
            continue
        inner = spec["type"].strip("[]").split("]")[0].split(",")[0]
        sub = getattr(models, inner, None)
        if sub is not None and isinstance(sub, type):
            problems += _check_shape(child, sub, f"{path}/{child.tag}")
    return problems


def test_list_cname_xml_matches_the_sdk_models(sb):
    bundle = make_bundle("x", ["cdn.example.com"])
    from sandbox.certs import validate_pair
    from sandbox.state import StoredCert
    with sb.world.lock:
        cas = StoredCert(cert_id=sb.world.new_cert_id(), name="x", chain_pem=bundle.fullchain_pem,
                         key_pem=bundle.key_pem, info=validate_pair(bundle.fullchain_pem, bundle.key_pem),
                         created=0.0)
        sb.world.certs_by_id[cas.cert_id] = cas
    c = client(sb)
    c.put_cname(oss.PutCnameRequest(bucket="assets", bucket_cname_configuration=oss.BucketCnameConfiguration(
        cname=oss.Cname(domain="cdn.example.com", certificate_configuration=oss.CertificateConfiguration(
            cert_id=f"{cas.cert_id}-cn-hangzhou", force=True)))))
    from sandbox.products.oss import list_cname
    root = ET.fromstring(list_cname(sb.world.oss_buckets["assets"]))
    assert root.tag == "ListCnameResult"
    assert _check_shape(root, models.ListCnameResult, "ListCnameResult") == []
    result = c.list_cname(oss.ListCnameRequest(bucket="assets"))
    [info] = result.cnames
    assert (info.domain, info.certificate.type, info.certificate.cert_id, info.certificate.status) == (
        "cdn.example.com", "CAS", f"{cas.cert_id}-cn-hangzhou", "Enabled")


def test_signature_v4_refuses_a_wrong_secret_and_a_tampered_request(sb):
    with pytest.raises(oss.exceptions.OperationError) as info:
        client(sb, "not-the-secret").list_cname(oss.ListCnameRequest(bucket="assets"))
    assert info.value.unwrap().code == "SignatureDoesNotMatch"
    # a correctly signed request for one bucket, replayed against another path: refused
    headers = _signed_headers(sb)
    ok = requests.get(f"{sb.api_url}/assets/?cname", headers=headers, timeout=5)
    assert ok.status_code == 200, ok.text
    bad = requests.get(f"{sb.api_url}/other/?cname", headers=headers, timeout=5)
    assert bad.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in bad.text
    unsigned = requests.get(f"{sb.api_url}/assets/?cname", headers={"Host": "x.oss-cn-hangzhou.aliyuncs.com"},
                            timeout=5)
    assert unsigned.status_code == 403 and "<Code>AccessDenied</Code>" in unsigned.text


def _signed_headers(sb) -> dict[str, str]:
    """Sign GET /assets/?cname with the sandbox's own V4 functions (what a client must send)."""
    import datetime as dt
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {"x-oss-date": stamp, "x-oss-content-sha256": "UNSIGNED-PAYLOAD"}
    auth = v4.Authorization(AK, stamp[:8], "cn-hangzhou", "oss", (), "")
    canonical = v4.canonical_request("GET", v4.canonical_uri("assets"), [("cname", "")], headers, ())
    sig = v4.signature(SECRET, auth, v4.string_to_sign(stamp, auth.date, "cn-hangzhou", "oss", canonical))
    headers["Authorization"] = (f"OSS4-HMAC-SHA256 Credential={AK}/{stamp[:8]}/cn-hangzhou/oss/"
                                f"aliyun_v4_request,Signature={sig}")
    return headers
