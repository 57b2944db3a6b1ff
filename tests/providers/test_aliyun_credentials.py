"""Credential precedence and RAM-role metadata credentials (pure: a fake HTTP session)."""

import logging
from datetime import UTC, datetime, timedelta

import pytest

from daemon.config import AliyunConfig
from providers.aliyun.credentials import Credentials, CredentialSource
from providers.base import CredentialError

LOG = logging.getLogger("test.credentials")
ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIenv", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "envsecret"}


class FakeResponse:
    def __init__(self, status, data, text=""):
        self.status_code = status
        self._data = data
        self.text = text

    def json(self):
        if isinstance(self._data, Exception):
            raise self._data
        return self._data


class FakeSession:
    """Stands in for requests.Session: records URL and timeout of every GET (``calls``), the
    headers of every GET (``headers``) and every token PUT (``puts``). ``token`` is what the
    PUT answers: a string (200 with that token), a FakeResponse or an exception."""

    def __init__(self, *answers, token="tok-1"):
        self.answers = list(answers)
        self.calls = []
        self.headers = []
        self.puts = []
        self.token = token

    def put(self, url, headers=None, timeout=None, allow_redirects=True):
        self.puts.append((url, dict(headers or {}), timeout))
        answer = self.token
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(answer, Exception):
            raise answer
        return FakeResponse(200, None, text=answer) if isinstance(answer, str) else answer

    def get(self, url, headers=None, timeout=None, allow_redirects=True):
        self.calls.append((url, timeout))
        self.headers.append(dict(headers or {}))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def role_answer(key_id="STS.a", expires=None):
    exp = (expires or datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return FakeResponse(200, {"Code": "Success", "AccessKeyId": key_id, "AccessKeySecret": "stssecret",
                              "SecurityToken": "ststoken", "Expiration": exp,
                              "LastUpdated": "2024-01-01T00:00:00Z"})


def test_config_keys_win_over_env_and_role():
    cfg = AliyunConfig(access_key_id="LTAIcfg", access_key_secret="cfgsecret", ram_role="r")
    creds = CredentialSource(cfg, log=LOG, env=ENV).get()
    assert (creds.access_key_id, creds.security_token) == ("LTAIcfg", None)
    assert "config" in creds.source


def test_config_sts_token():
    cfg = AliyunConfig(access_key_id="STS.cfg", access_key_secret="s", security_token="tok")
    creds = CredentialSource(cfg, log=LOG, env={}).get()
    assert creds.security_token == "tok"
    assert "(STS)" in creds.describe()


def test_env_used_when_config_has_no_keys():
    src = CredentialSource(AliyunConfig(ram_role="r"), log=LOG,
                           env={**ENV, "ALIBABA_CLOUD_SECURITY_TOKEN": "envtok"})
    creds = src.get()
    assert (creds.access_key_id, creds.security_token) == ("LTAIenv", "envtok")
    assert not src.refreshable


def test_aliyun_prefixed_env_is_not_a_source():
    env = {"ALIYUN_ACCESS_KEY_ID": "LTAIsdk", "ALIYUN_ACCESS_KEY_SECRET": "sdksecret"}
    with pytest.raises(CredentialError) as info:
        CredentialSource(AliyunConfig(), log=LOG, env=env).get()
    msg = str(info.value)
    assert "access_key_id" in msg and "ALIBABA_CLOUD_ACCESS_KEY_ID" in msg and "ram_role" in msg
    assert "\n" not in msg


def test_half_configured_keys_are_an_error():
    with pytest.raises(CredentialError, match="both"):
        CredentialSource(AliyunConfig(access_key_id="LTAIx"), log=LOG, env=ENV).get()


def test_repr_and_describe_hide_secrets():
    creds = Credentials("LTAIabc", "topsecret", "tokentoken", source="config [aliyun]")
    for text in (repr(creds), str(creds), creds.describe()):
        assert "topsecret" not in text and "tokentoken" not in text
        assert "LTAIabc" in text


def test_ram_role_fetch_uses_timeout_and_path():
    session = FakeSession(role_answer())
    src = CredentialSource(AliyunConfig(ram_role="alicertd-role", metadata_endpoint="http://md.test/"),
                           log=LOG, env={}, session=session)
    creds = src.get()
    assert creds.security_token == "ststoken" and creds.expiration is not None
    url, timeout = session.calls[0]
    assert url == "http://md.test/latest/meta-data/ram/security-credentials/alicertd-role"
    assert timeout == (2.0, 5.0)
    src.get()
    assert len(session.calls) == 1  # cached while far from Expiration


def test_ram_role_refreshed_five_minutes_before_expiration():
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    session = FakeSession(role_answer("STS.one", expires=now[0] + timedelta(minutes=30)),
                          role_answer("STS.two", expires=now[0] + timedelta(hours=2)))
    src = CredentialSource(AliyunConfig(ram_role="r"), log=LOG, env={}, session=session,
                           now=lambda: now[0])
    assert src.get().access_key_id == "STS.one"
    now[0] += timedelta(minutes=24)
    assert src.get().access_key_id == "STS.one"
    now[0] += timedelta(minutes=2)  # 4 minutes left: inside the 5-minute margin
    assert src.get().access_key_id == "STS.two"
    assert len(session.calls) == 2


def test_ram_role_refresh_on_demand_and_stale_guard():
    session = FakeSession(role_answer("STS.one"), role_answer("STS.two"), role_answer("STS.three"))
    src = CredentialSource(AliyunConfig(ram_role="r"), log=LOG, env={}, session=session)
    one = src.get()
    two = src.refresh(stale=one)
    assert two.access_key_id == "STS.two"
    assert src.refresh(stale=one) is two  # someone else already refreshed
    assert len(session.calls) == 2


@pytest.mark.parametrize("answer,match", [
    (FakeResponse(404, {}), "not attached"),
    (FakeResponse(200, {"Code": "Failed"}), "refused"),
    (FakeResponse(200, ValueError("no json")), "not a JSON"),
    (FakeResponse(200, {"Code": "Success", "AccessKeyId": "x"}), "lacks"),
    (FakeResponse(500, {}), "HTTP 500"),
])
def test_ram_role_metadata_failures(answer, match):
    src = CredentialSource(AliyunConfig(ram_role="r"), log=LOG, env={}, session=FakeSession(answer))
    with pytest.raises(CredentialError, match=match):
        src.get()


def test_ram_role_metadata_unreachable():
    import requests

    src = CredentialSource(AliyunConfig(ram_role="r"), log=LOG, env={},
                           session=FakeSession(requests.ConnectTimeout("boom")))
    with pytest.raises(CredentialError, match="cannot fetch") as info:
        src.get()
    assert info.value.retryable


def test_refresh_failure_keeps_still_valid_credentials():
    import requests

    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    session = FakeSession(role_answer("STS.one", expires=now[0] + timedelta(minutes=10)),
                          requests.ConnectionError("down"))
    src = CredentialSource(AliyunConfig(ram_role="r"), log=LOG, env={}, session=session,
                           now=lambda: now[0])
    src.get()
    now[0] += timedelta(minutes=6)
    assert src.get().access_key_id == "STS.one"
    now[0] += timedelta(minutes=5)  # expired now
    with pytest.raises(CredentialError):
        src.get()


def test_ram_role_metadata_that_never_answers_times_out():
    """A metadata service that accepts the connection and then says nothing: the fetch gives
    up after the 5 s read timeout instead of hanging the daemon (the SDK's signer would)."""
    import socket
    import time

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)  # the kernel completes the handshake; nobody ever reads or writes
        port = server.getsockname()[1]
        src = CredentialSource(AliyunConfig(ram_role="r", metadata_endpoint=f"http://127.0.0.1:{port}"),
                               log=LOG, env={})
        t0 = time.monotonic()
        with pytest.raises(CredentialError, match="did not answer the token request") as info:
            src.get()
        assert 4.5 <= time.monotonic() - t0 < 8
        assert info.value.retryable


# --------------------------------------------------------------------------- IMDSv2 (hardened mode)


def test_role_fetch_sends_a_hardened_mode_token():
    session = FakeSession(role_answer(), token="tok-abc")
    src = CredentialSource(AliyunConfig(ram_role="r", metadata_endpoint="http://md.test"),
                           log=LOG, env={}, session=session)
    src.get()
    (url, headers, timeout), = session.puts
    assert url == "http://md.test/latest/api/token"
    assert headers == {"X-aliyun-ecs-metadata-token-ttl-seconds": "21600"}
    assert timeout == (2.0, 5.0)
    assert session.headers == [{"X-aliyun-ecs-metadata-token": "tok-abc"}]


@pytest.mark.parametrize("token_answer", [
    FakeResponse(404, None), FakeResponse(405, None), FakeResponse(501, None),
    __import__("requests").ConnectionError("refused"),
])
def test_unavailable_token_endpoint_falls_back_to_plain_get_logged_once(token_answer, caplog):
    session = FakeSession(role_answer("STS.one"), role_answer("STS.two"), token=token_answer)
    src = CredentialSource(AliyunConfig(ram_role="r"), log=LOG, env={}, session=session)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert src.get().access_key_id == "STS.one"
        assert src.refresh().access_key_id == "STS.two"
    assert session.headers == [{}, {}]  # plain GETs
    assert len(session.puts) == 2  # the token endpoint is asked again each time
    warnings = [r for r in caplog.records if "plain GET" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize("token_answer,match,retryable", [
    (FakeResponse(403, None), "HTTP 403 to the token request", False),
    (FakeResponse(400, None), "HTTP 400 to the token request", False),
    (FakeResponse(500, None), "HTTP 500 to the token request", True),
    (FakeResponse(200, None, text="  "), "empty token", False),
    (__import__("requests").ReadTimeout("silence"), "did not answer the token request", True),
])
def test_other_token_failures_are_reported_not_bypassed(token_answer, match, retryable):
    session = FakeSession(role_answer(), token=token_answer)
    src = CredentialSource(AliyunConfig(ram_role="r"), log=LOG, env={}, session=session)
    with pytest.raises(CredentialError, match=match) as info:
        src.get()
    assert info.value.retryable is retryable
    assert session.calls == []  # no plain GET behind the refusal


def test_refused_token_is_replaced_once():
    session = FakeSession(FakeResponse(401, None), role_answer("STS.ok"), token=["tok-1", "tok-2"])
    src = CredentialSource(AliyunConfig(ram_role="r"), log=LOG, env={}, session=session)
    assert src.get().access_key_id == "STS.ok"
    assert [h["X-aliyun-ecs-metadata-token"] for h in session.headers] == ["tok-1", "tok-2"]


def test_token_refused_twice_is_a_credential_error():
    session = FakeSession(FakeResponse(401, None))
    src = CredentialSource(AliyunConfig(ram_role="r"), log=LOG, env={}, session=session)
    with pytest.raises(CredentialError, match="refused its own token"):
        src.get()
    assert len(session.calls) == 2


def test_plain_get_refused_names_hardened_mode():
    session = FakeSession(FakeResponse(403, None), token=FakeResponse(404, None))
    src = CredentialSource(AliyunConfig(ram_role="r"), log=LOG, env={}, session=session)
    with pytest.raises(CredentialError, match="requires security hardening mode"):
        src.get()
