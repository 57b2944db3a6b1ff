"""Pure pieces of the CDN / API Gateway providers: names, config, the pager's arithmetic,
the TLS probe and the poll loop. Against the sandbox: test_cdn_sandbox.py."""

from __future__ import annotations

import threading
import time

import pytest

from providers.base import Binding, ConfigDefaults, ConfigErrors, ProviderError, Target
from providers.cdn import CdnProvider, CdnSettings
from providers.certnames import (
    APIGATEWAY_NAME_MAX,
    CDN_NAME_MAX,
    KnownCertificates,
    cert_name,
    fingerprint_prefix,
    leaf_of_pem,
)
from providers.tls import edge_for, handshake_serial, probe_name, wait_for

from .certs import make_bundle
from .conftest import make_ctx
from .tlsserver import TlsServer

FP = "0123456789abcdef" * 4
PATH = "certificate[0].deploy[1]"


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name, limit, expected", [
    ("www", CDN_NAME_MAX, "alicertd-www-0123456789ab"),
    ("www", APIGATEWAY_NAME_MAX, "alicertd-www-0123456789ab"),
    ("a" * 63, APIGATEWAY_NAME_MAX, "alicertd-" + "a" * 28 + "-0123456789ab"),
    ("a" * 63, CDN_NAME_MAX, "alicertd-" + "a" * 41 + "-0123456789ab"),
    ("ab-" + "c" * 25 + "-d", APIGATEWAY_NAME_MAX, "alicertd-ab-" + "c" * 25 + "-0123456789ab"),
])
def test_cert_name(name, limit, expected):
    got = cert_name(name, FP, limit)
    assert got == expected
    assert len(got) <= limit and got[0].isalpha() and "--" not in got
    assert fingerprint_prefix(got) == FP[:12]


@pytest.mark.parametrize("text", [None, "", "cert-123", "my-cdn-cert", "alicertd-www-0123456789",
                                  "alicertd-www-0123456789abX", "Alicertd-www-xyz456789abc"])
def test_foreign_names_are_not_ours(text):
    assert fingerprint_prefix(text) is None


def test_known_certificates_come_from_the_daemons_bundles():
    bundle = make_bundle("www", ["example.com"])
    known = KnownCertificates({"www": bundle})
    leaf = known.lookup(bundle.fingerprint[:12])
    assert (leaf.serial, leaf.fingerprint) == (bundle.serial, bundle.fingerprint)
    assert known.lookup("0" * 12) is None
    assert leaf_of_pem(bundle.fullchain_pem) == leaf


# --------------------------------------------------------------------------- config


def parse_cdn(raw):
    errors = ConfigErrors()
    return CdnProvider.parse_config(raw, PATH, errors, ConfigDefaults("cn-hangzhou")), errors.messages


def test_cdn_config_and_expand():
    settings, errors = parse_cdn({"domains": ["cdn.example.com", "*.static.example.com", "IMG.example.com"]})
    assert errors == []
    assert settings == CdnSettings(("cdn.example.com", "*.static.example.com", "img.example.com"))
    targets = CdnProvider.expand(settings)
    assert [(t.provider, t.name, t.domain) for t in targets] == [
        ("cdn", "cdn.example.com", "cdn.example.com"),
        ("cdn", "*.static.example.com", "*.static.example.com"),
        ("cdn", "img.example.com", "img.example.com")]


@pytest.mark.parametrize("raw, expected", [
    ({}, [f"{PATH}.domains: missing required key"]),
    ({"domains": []}, [f"{PATH}.domains: must not be an empty list"]),
    ({"domains": "cdn.example.com"}, [f"{PATH}.domains: expected a list of strings, got a string"]),
    ({"domains": ["a.example.com", "A.example.com"]}, [f"{PATH}.domains[1]: duplicate domain 'A.example.com'"]),
    ({"domains": ["a..example.com"]}, None),
    ({"domains": ["a.example.com"], "domainz": ["x"]}, [f"{PATH}.domainz: unknown key"]),
])
def test_cdn_config_errors(raw, expected):
    settings, errors = parse_cdn(raw)
    assert settings is None
    if expected is None:
        assert len(errors) == 1 and errors[0].startswith(f"{PATH}.domains[0]: ")
    else:
        assert errors == expected


# --------------------------------------------------------------------------- the pager


class ScriptedCdn:
    """Answers DescribeCdnHttpsDomainList / DescribeDomainCertificateInfo from a table, the way
    the service pages (``max_size`` caps PageSize, or refuses it when ``refuse_above``)."""

    def __init__(self, rows: list[dict], max_size: int = 1000, refuse_above: int | None = None):
        self.rows, self.max_size, self.refuse_above = rows, max_size, refuse_above
        self.calls: list[tuple[str, dict]] = []

    def call(self, product, request, *, region=None):
        action, params = request.get_action_name(), dict(request.get_query_params())
        self.calls.append((action, params))
        if action == "DescribeCdnHttpsDomainList":
            size = int(params["PageSize"])
            if self.refuse_above is not None and size > self.refuse_above:
                raise ProviderError(f'cdn: {action} failed: InvalidParameter (HTTP 400): The specified '
                                    f'parameter "PageSize" is not valid.', code="InvalidParameter")
            size = min(size, self.max_size)
            start = (int(params["PageNumber"]) - 1) * size
            return {"TotalCount": len(self.rows), "CertInfos": {"CertInfo": self.rows[start:start + size]}}
        assert action == "DescribeDomainCertificateInfo"
        return {"CertInfos": {"CertInfo": [{"DomainName": params["DomainName"],
                                            "ServerCertificateStatus": "off", "Status": "success"}]}}

    def count(self, action):
        return sum(1 for a, _ in self.calls if a == action)


def rows_for(n: int, bundle) -> list[dict]:
    name = cert_name(bundle.name, bundle.fingerprint, CDN_NAME_MAX)
    return [{"DomainName": f"d{i:05d}.example.com", "CertName": name, "CertStatus": "ok"} for i in range(n)]


def cdn_targets(domains):
    settings = CdnSettings(tuple(domains))
    return CdnProvider.expand(settings)


@pytest.mark.parametrize("n_rows, max_size, pages", [(1000, 1000, 2), (1000, 500, 2), (2500, 100, 25),
                                                     (0, 1000, 1)])
def test_reads_all_targets_in_pages(state_dir, n_rows, max_size, pages):
    bundle = make_bundle("www", ["example.com"])
    api = ScriptedCdn(rows_for(n_rows, bundle), max_size=max_size)
    provider = CdnProvider(make_ctx(state_dir), api=api)
    provider.known.add(leaf_of_pem(bundle.fullchain_pem))
    targets = cdn_targets([r["DomainName"] for r in api.rows] + ["absent.example.com"])
    bindings = provider.read_bindings(targets)
    assert api.count("DescribeCdnHttpsDomainList") == pages
    assert api.count("DescribeDomainCertificateInfo") == 0
    assert bindings[targets[-1]] == Binding("none")
    assert all(bindings[t].serves(bundle) for t in targets[:-1])


def test_few_targets_in_a_big_account_are_looked_at_one_by_one(state_dir):
    bundle = make_bundle("www", ["example.com"])
    api = ScriptedCdn(rows_for(5000, bundle), max_size=100)
    provider = CdnProvider(make_ctx(state_dir), api=api)
    provider.known.add(leaf_of_pem(bundle.fullchain_pem))
    targets = cdn_targets(["d00003.example.com", "absent.example.com", "d04999.example.com"])
    bindings = provider.read_bindings(targets)
    # page 1 finds one; 2 left < 49 pages left: two detail calls instead
    assert api.count("DescribeCdnHttpsDomainList") == 1
    assert api.count("DescribeDomainCertificateInfo") == 2
    assert bindings[targets[0]].serves(bundle)
    assert bindings[targets[1]].state == "none" and bindings[targets[2]].state == "none"


def test_refused_page_size_falls_back(state_dir):
    bundle = make_bundle("www", ["example.com"])
    api = ScriptedCdn(rows_for(250, bundle), refuse_above=100)
    provider = CdnProvider(make_ctx(state_dir), api=api)
    provider.known.add(leaf_of_pem(bundle.fullchain_pem))
    targets = cdn_targets([r["DomainName"] for r in api.rows])
    assert all(b.serves(bundle) for b in provider.read_bindings(targets).values())
    sizes = [p["PageSize"] for a, p in api.calls]
    assert sizes == [500, 100, 100, 100]


def test_unknown_fingerprint_prefix_is_looked_at(state_dir):
    bundle = make_bundle("www", ["example.com"])
    api = ScriptedCdn(rows_for(3, bundle))
    provider = CdnProvider(make_ctx(state_dir), api=api)  # the state dir does not know it
    targets = cdn_targets([r["DomainName"] for r in api.rows])
    provider.read_bindings(targets)
    assert api.count("DescribeDomainCertificateInfo") == 3


def test_page_failure_marks_unread_targets_unknown(state_dir):
    class Failing(ScriptedCdn):
        def call(self, product, request, *, region=None):
            if request.get_action_name() == "DescribeCdnHttpsDomainList":
                raise ProviderError("cdn: DescribeCdnHttpsDomainList failed: InternalError (HTTP 500) "
                                    "(gave up after 6 attempts)", code="InternalError", retryable=True)
            return super().call(product, request, region=region)

    provider = CdnProvider(make_ctx(state_dir), api=Failing([]))
    [target] = cdn_targets(["a.example.com"])
    binding = provider.read_bindings([target])[target]
    assert binding.state == "unknown" and "InternalError" in binding.detail


# --------------------------------------------------------------------------- TLS and polling


def test_probe_name_and_edge():
    assert probe_name("*.static.example.com") == "alicertd-verify.static.example.com"
    assert probe_name("img.example.com") == "img.example.com"
    assert edge_for("*.static.example.com", "127.0.0.1:8443") == (
        "127.0.0.1", 8443, "alicertd-verify.static.example.com")
    assert edge_for("img.example.com", None) == ("img.example.com", 443, "img.example.com")


def test_handshake_reports_the_leaf_per_sni():
    a = make_bundle("a", ["a.example.com"])
    b = make_bundle("b", ["*.b.example.com"])
    with TlsServer({"a.example.com": a, "x.b.example.com": b}, default=a) as server:
        assert handshake_serial("127.0.0.1", server.port, "a.example.com", 5) == (a.serial, a.fingerprint)
        assert handshake_serial(f"127.0.0.1:{server.port}", 443, "x.b.example.com", 5) == (
            b.serial, b.fingerprint)


def test_handshake_failure_is_one_line():
    from providers.tls import HandshakeError
    with pytest.raises(HandshakeError, match=r"^TLS handshake with 127\.0\.0\.1:1 \(SNI a\.example\.com\) failed: "):
        handshake_serial("127.0.0.1", 1, "a.example.com", 2)


def test_wait_for_grows_intervals_and_honours_deadline_and_stop():
    now = [0.0]
    waits: list[float] = []

    class Clock(threading.Event):
        def wait(self, timeout=None):
            waits.append(timeout)
            now[0] += timeout
            return False

    answers = iter([None, None, None, "done"])
    got = wait_for(lambda: next(answers), deadline=100, stop=Clock(), what="t",
                   clock=lambda: now[0], intervals=(1, 2, 4))
    assert got == "done" and waits == [1, 2, 4]

    waits.clear()
    now[0] = 0.0
    assert wait_for(lambda: None, deadline=10, stop=Clock(), what="t", clock=lambda: now[0],
                    intervals=(1, 2, 4)) is None
    assert waits == [1, 2, 4, 3] and now[0] == 10

    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    with pytest.raises(ProviderError, match="^cdn: x: interrupted"):
        wait_for(lambda: None, deadline=time.monotonic() + 60, stop=stop, what="cdn: x")
    assert time.monotonic() - started < 1


def test_target_identity_is_provider_and_name():
    a = Target("cdn", "a.example.com", CdnSettings(("a.example.com",)), domain="a.example.com")
    b = Target("cdn", "a.example.com", CdnSettings(("a.example.com", "b.example.com")), domain="a.example.com")
    assert a == b and hash(a) == hash(b)


# --------------------------------------------------------------------------- bind by CAS id


class FakeHub:
    """The CAS hub's interface, counting uploads (the real one is tested in test_cas_sandbox)."""

    def __init__(self):
        self.ensured: list[tuple[str, str]] = []

    def ensure(self, bundle, account="default"):
        from providers.cas import CasCertificate
        self.ensured.append((bundle.fingerprint, account))
        return CasCertificate(4242, "ap-southeast-1", "alicertd-x", bundle.fingerprint, bundle.serial)

    def identify(self, cert_id, account="default"):
        return None


class Busy(ScriptedCdn):
    """SetCdnDomainSSLCertificate answers ServiceBusy (after the access layer's backoff)."""

    def __init__(self, served_pem: str | None):
        super().__init__([])
        self.served_pem = served_pem

    def call(self, product, request, *, region=None):
        action, params = request.get_action_name(), dict(request.get_query_params())
        self.calls.append((action, params))
        if action == "SetCdnDomainSSLCertificate":
            raise ProviderError("cdn: SetCdnDomainSSLCertificate failed: ServiceBusy (HTTP 403)",
                                code="ServiceBusy", retryable=True)
        info = {"DomainName": params["DomainName"], "ServerCertificateStatus": "on", "Status": "configuring"}
        if self.served_pem:
            info["ServerCertificate"] = self.served_pem
        return {"CertInfos": {"CertInfo": [info]}}


class Recorder(ScriptedCdn):
    def call(self, product, request, *, region=None):
        self.calls.append((request.get_action_name(), dict(request.get_query_params())))
        return {}


def test_bind_names_the_cas_certificate_and_sends_no_key(state_dir):
    bundle = make_bundle("www", ["*.example.com"])
    api, hub = Recorder([]), FakeHub()
    settings, errors = parse_cdn({"domains": ["*.example.com"], "account": "default"})
    assert errors == []
    [t] = CdnProvider.expand(settings)
    CdnProvider(make_ctx(state_dir), api=api, hub=hub).bind(t, bundle)
    [(action, params)] = api.calls
    assert action == "SetCdnDomainSSLCertificate"
    assert params == {"DomainName": ".example.com", "SSLProtocol": "on", "CertType": "cas",
                      "CertId": 4242, "CertRegion": "ap-southeast-1"}
    assert hub.ensured == [(bundle.fingerprint, "default")]


def test_service_busy_with_our_certificate_is_done(state_dir):
    bundle = make_bundle("www", ["a.example.com"])
    api = Busy(served_pem=bundle.fullchain_pem)
    [t] = cdn_targets(["a.example.com"])
    provider = CdnProvider(make_ctx(state_dir), api=api, hub=FakeHub())
    provider.bind(t, bundle)
    assert [a for a, _ in api.calls] == ["SetCdnDomainSSLCertificate", "DescribeDomainCertificateInfo"]


def test_service_busy_with_another_certificate_fails(state_dir):
    bundle = make_bundle("www", ["a.example.com"])
    api = Busy(served_pem=make_bundle("old", ["a.example.com"]).fullchain_pem)
    [t] = cdn_targets(["a.example.com"])
    with pytest.raises(ProviderError, match="ServiceBusy"):
        CdnProvider(make_ctx(state_dir), api=api, hub=FakeHub()).bind(t, bundle)


def test_generic_invalid_parameter_also_shrinks_the_page(state_dir):
    """No PageSize-specific code is documented: a bare InvalidParameter triggers the fallback."""
    bundle = make_bundle("www", ["example.com"])

    class Generic(ScriptedCdn):
        def call(self, product, request, *, region=None):
            if int(request.get_query_params().get("PageSize", 0)) > 100:
                self.calls.append((request.get_action_name(), dict(request.get_query_params())))
                raise ProviderError("cdn: DescribeCdnHttpsDomainList failed: InvalidParameter (HTTP 400)",
                                    code="InvalidParameter")
            return super().call(product, request, region=region)

    api = Generic(rows_for(150, bundle))
    provider = CdnProvider(make_ctx(state_dir), api=api)
    provider.known.add(leaf_of_pem(bundle.fullchain_pem))
    targets = cdn_targets([r["DomainName"] for r in api.rows])
    assert all(b.serves(bundle) for b in provider.read_bindings(targets).values())
    assert [p["PageSize"] for _, p in api.calls] == [500, 100, 100]


def test_other_failures_do_not_shrink_the_page(state_dir):
    class Denied(ScriptedCdn):
        def call(self, product, request, *, region=None):
            self.calls.append((request.get_action_name(), dict(request.get_query_params())))
            raise ProviderError("cdn: DescribeCdnHttpsDomainList failed: InvalidDomain.NotFound (HTTP 404)",
                                code="InvalidDomain.NotFound")

    api = Denied([])
    provider = CdnProvider(make_ctx(state_dir), api=api)
    [t] = cdn_targets(["a.example.com"])
    assert provider.read_bindings([t])[t].state == "unknown"
    assert [p.get("PageSize") for a, p in api.calls if a == "DescribeCdnHttpsDomainList"] == [500]


def test_listing_matches_both_wildcard_spellings(state_dir):
    bundle = make_bundle("www", ["*.a.example.com", "*.b.example.com"])
    name = cert_name(bundle.name, bundle.fingerprint, CDN_NAME_MAX)
    api = ScriptedCdn([{"DomainName": ".a.example.com", "CertName": name, "CertStatus": "ok"},
                       {"DomainName": "*.b.example.com", "CertName": name, "CertStatus": "ok"}])
    provider = CdnProvider(make_ctx(state_dir), api=api)
    provider.known.add(leaf_of_pem(bundle.fullchain_pem))
    targets = cdn_targets(["*.a.example.com", "*.b.example.com"])
    assert all(b.serves(bundle) for b in provider.read_bindings(targets).values())
    assert api.count("DescribeDomainCertificateInfo") == 0


def test_api_wildcard_spelling_is_refused_with_a_pointer():
    settings, errors = parse_cdn({"domains": ["cdn.example.com", ".static.example.com"]})
    assert settings is None
    assert errors == [f"{PATH}.domains[1]: '.static.example.com' is the CDN API's spelling of a "
                      f"wildcard domain; write '*.static.example.com'"]
