"""OSS custom domains against the sandbox through alibabacloud-oss-v2 (Signature V4, checked by
the sandbox's own implementation): bind by CAS id, read back, verify (API + TLS edge), drift
repaired with a compare-and-swap on the current certificate, second run writes nothing, bad
config named, permission error naming the RAM action, a wrong secret refused."""

from __future__ import annotations

import dataclasses
import time

import pytest

from providers.base import ConfigDefaults, ConfigErrors, CredentialError, ProviderError
from providers.oss import OssProvider, OssSettings

from .certs import make_bundle
from .conftest import eventually, provider_for
from .targets_support import ctx_for, now, world, writes


@pytest.fixture
def sb():
    with world() as sandbox:
        yield sandbox


def targets(*domains, bucket="static-assets"):
    return OssProvider.expand(OssSettings(bucket=bucket, region="cn-hangzhou", domains=tuple(domains)))


def served(sb, domain):
    with sb.world.lock:
        c = sb.world.oss_buckets["static-assets"].cnames[domain]
        return c.cert.info.fingerprint if c.cert else None


def test_bind_read_verify_and_second_run_writes_nothing(sb, state_dir):
    bundle = make_bundle("static", ["static.example.com", "files.example.com"])
    ctx = ctx_for(sb, state_dir)
    provider = provider_for(OssProvider, ctx)
    ts = targets("static.example.com", "files.example.com")
    assert {b.state for b in provider.read_bindings(ts).values()} == {"none"}
    for t in ts:
        provider.bind(t, bundle)
    for t in ts:
        assert provider.verify(t, bundle, time.monotonic() + 20).serves(bundle)
        assert served(sb, t.domain) == bundle.fingerprint
    puts = sb.calls(action="PutCname")
    assert [c["status"] for c in puts] == [200, 200]
    assert eventually(lambda: {"static.example.com", "files.example.com"} <= {e.get("sni") for e in sb.edge_log()})

    since = now()
    ctx.bundles["static"] = bundle
    again = provider_for(OssProvider, ctx)
    bindings = again.read_bindings(ts)
    assert all(b.serves(bundle) for b in bindings.values())
    assert sb.call_counts(since=since) == {"ListCname": 1}  # one listing for the bucket
    for t in ts:
        again.bind(t, bundle)
    assert writes(sb, since) == []


def test_drift_is_repaired_with_the_previous_cert_id(sb, state_dir):
    ours = make_bundle("static", ["static.example.com"])
    theirs = make_bundle("console", ["static.example.com"])
    ctx = ctx_for(sb, state_dir)
    ctx.bundles["static"] = ours
    provider = provider_for(OssProvider, ctx)
    [t] = targets("static.example.com")
    other_dir = state_dir / "other"
    other_dir.mkdir()
    other = provider_for(OssProvider, ctx_for(sb, other_dir))
    other.bind(t, theirs)
    assert not provider.read_bindings([t])[t].serves(ours)
    previous = sb.world.oss_buckets["static-assets"].cnames["static.example.com"].cert_id
    provider.bind(t, ours)
    assert provider.verify(t, ours, time.monotonic() + 20).serves(ours)
    assert served(sb, "static.example.com") == ours.fingerprint
    assert previous and sb.calls(action="PutCname")[-1]["status"] == 200


def test_unmapped_domain_unknown_bucket_permission_and_bad_secret(sb, state_dir):
    bundle = make_bundle("static", ["new.example.com"])
    provider = provider_for(OssProvider, ctx_for(sb, state_dir))
    [t] = targets("new.example.com")
    assert provider.read_bindings([t])[t].state == "error"
    with pytest.raises(ProviderError, match="is not a custom domain of bucket static-assets"):
        provider.bind(t, bundle)
    [t] = targets("static.example.com", bucket="no-such-bucket")
    assert "NoSuchBucket" in provider.read_bindings([t])[t].detail

    limited = provider_for(OssProvider, ctx_for(sb, state_dir, limited=True))
    [t] = targets("static.example.com")
    with pytest.raises(CredentialError, match="must allow oss:PutCname$"):
        limited.bind(t, make_bundle("static", ["static.example.com"]))

    ctx = ctx_for(sb, state_dir)
    ctx.config = dataclasses.replace(ctx.config, aliyun=dataclasses.replace(
        ctx.config.aliyun, access_key_secret="wrong-secret"))
    wrong = provider_for(OssProvider, ctx)
    with pytest.raises(CredentialError, match="SignatureDoesNotMatch"):
        wrong.list_cname(t.settings)


@pytest.mark.parametrize("raw, message", [
    ({"domains": ["a.example.com"]}, "d.bucket: missing required key"),
    ({"bucket": "Bad_Bucket", "domains": ["a.example.com"]},
     "d.bucket: invalid bucket name 'Bad_Bucket' (3-63 lowercase letters, digits, '-')"),
    ({"bucket": "ok-bucket", "domains": ["*.example.com"]},
     "d.domains[0]: wildcard custom domains are not supported by the oss provider"),
    ({"bucket": "ok-bucket", "domains": ["a.example.com"], "cert_id": 1}, "d.cert_id: unknown key"),
])
def test_bad_config_is_named(raw, message):
    errors = ConfigErrors()
    assert OssProvider.parse_config(raw, "d", errors, ConfigDefaults(region="cn-hangzhou")) is None
    assert errors.messages == [message]
