"""The problem table: every ACME error type to one typed exception, retryable decided once."""

from __future__ import annotations

import pytest

from daemon.acme import problems as p

TABLE = [
    ("accountDoesNotExist", p.AccountDoesNotExist, False),
    ("alreadyRevoked", p.AlreadyRevoked, False),
    ("alreadyReplaced", p.AlreadyReplaced, False),
    ("badCSR", p.BadCsr, False),
    ("badNonce", p.BadNonce, True),
    ("badPublicKey", p.BadPublicKey, False),
    ("badRevocationReason", p.BadRevocationReason, False),
    ("badSignatureAlgorithm", p.BadSignatureAlgorithm, False),
    ("caa", p.Caa, False),
    ("compound", p.Compound, False),
    ("connection", p.ConnectionProblem, True),
    ("dns", p.Dns, True),
    ("externalAccountRequired", p.ExternalAccountRequired, False),
    ("incorrectResponse", p.IncorrectResponse, True),
    ("invalidContact", p.InvalidContact, False),
    ("invalidProfile", p.InvalidProfile, False),
    ("malformed", p.Malformed, False),
    ("orderNotReady", p.OrderNotReady, False),
    ("rateLimited", p.RateLimited, True),
    ("rejectedIdentifier", p.RejectedIdentifier, False),
    ("serverInternal", p.ServerInternal, True),
    ("tls", p.Tls, True),
    ("unauthorized", p.Unauthorized, False),
    ("unsupportedContact", p.UnsupportedContact, False),
    ("unsupportedIdentifier", p.UnsupportedIdentifier, False),
    ("userActionRequired", p.UserActionRequired, False),
]


@pytest.mark.parametrize("short, cls, retryable", TABLE)
def test_each_type_maps_to_its_class(short, cls, retryable):
    err = p.problem_from_json({"type": p.ACME_ERROR_PREFIX + short, "detail": "why"}, status=400,
                              url="https://ca.test/x", method="POST")
    assert type(err) is cls and isinstance(err, p.AcmeError)
    assert err.retryable is retryable and p.is_retryable(err) is retryable
    assert err.type == p.ACME_ERROR_PREFIX + short and err.detail == "why" and err.status == 400
    assert str(err) == f"acme: {short}: why (POST https://ca.test/x -> HTTP 400)"


def test_table_covers_every_class():
    assert set(p.PROBLEM_TYPES.values()) == {cls for _, cls, _ in TABLE}


def test_subproblems_and_identifier_one_line():
    doc = {
        "type": p.ACME_ERROR_PREFIX + "rejectedIdentifier",
        "detail": "Some identifiers\nwere rejected",
        "identifier": {"type": "dns", "value": "a.example"},
        "subproblems": [
            {"type": p.ACME_ERROR_PREFIX + "rejectedIdentifier", "detail": "forbidden",
             "identifier": {"type": "dns", "value": "b.example"}},
            {"type": p.ACME_ERROR_PREFIX + "caa", "detail": "CAA forbids"},
        ],
    }
    err = p.problem_from_json(doc, status=400)
    assert isinstance(err, p.RejectedIdentifier)
    assert err.identifier == "a.example"
    assert err.subproblems == (
        p.Subproblem(p.ACME_ERROR_PREFIX + "rejectedIdentifier", "forbidden", "b.example"),
        p.Subproblem(p.ACME_ERROR_PREFIX + "caa", "CAA forbids", None),
    )
    assert "\n" not in str(err)
    assert "rejectedIdentifier: forbidden [b.example]" in str(err) and "caa: CAA forbids" in str(err)


def test_rate_limited_and_user_action_carry_their_extras():
    rl = p.problem_from_json({"type": p.ACME_ERROR_PREFIX + "rateLimited", "detail": "slow down"},
                             status=429, retry_after=3600.0)
    assert isinstance(rl, p.RateLimited) and rl.retry_after == 3600.0
    ua = p.problem_from_json({"type": p.ACME_ERROR_PREFIX + "userActionRequired", "detail": "agree",
                              "instance": "https://ca.test/tos-page"}, status=403,
                             tos_url="https://ca.test/tos-v2")
    assert isinstance(ua, p.UserActionRequired)
    assert ua.tos_url == "https://ca.test/tos-v2" and ua.instance == "https://ca.test/tos-page"
    assert "https://ca.test/tos-v2" in str(ua)


def test_unknown_type_is_plain_error_retryable_only_for_5xx():
    unknown = {"type": "urn:example:weird", "detail": "??"}
    assert type(p.problem_from_json(unknown, status=400)) is p.AcmeError
    assert not p.problem_from_json(unknown, status=400).retryable
    assert p.problem_from_json(unknown, status=503).retryable


def test_with_identifier_updates_the_message():
    err = p.problem_from_json({"type": p.ACME_ERROR_PREFIX + "dns", "detail": "NXDOMAIN"})
    assert str(err.with_identifier("*.a.example")) == "acme: dns: NXDOMAIN [*.a.example]"
