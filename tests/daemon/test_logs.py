"""Log formats, the journald prefix, redaction and the SDK clamp."""

from __future__ import annotations

import io
import json
import logging
import os
import re

import pytest

from daemon import logs
from daemon.keys import generate_private_key, private_key_to_pem


@pytest.fixture(autouse=True)
def clean_logging():
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    saved_levels = {n: logging.getLogger(n).level for n in logs.CLAMPED_LOGGERS}
    yield
    for h in list(root.handlers):
        if getattr(h, "_alicertd_handler", False):
            root.removeHandler(h)
    root.setLevel(saved[0])
    for n, lvl in saved_levels.items():
        logging.getLogger(n).setLevel(lvl)
    logs.clear_secrets()


def lines(buf: io.StringIO) -> list[str]:
    return buf.getvalue().splitlines()


def test_text_format_with_timestamp_and_certificate(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    buf = io.StringIO()
    logs.setup_logging("info", "text", stream=buf)
    logs.cert_logger("www").info("issued serial %s", "0a1b")
    logging.getLogger("alicertd").debug("hidden at info")
    logging.getLogger("alicertd").warning("no cert here")
    out = lines(buf)
    assert len(out) == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO \[www\] issued serial 0a1b", out[0])
    assert re.fullmatch(r"\S+Z WARNING no cert here", out[1])


def test_journald_prefix_when_journal_stream_names_our_stream(monkeypatch, tmp_path):
    f = open(tmp_path / "stderr", "w+")  # noqa: SIM115 - closed by the fixture's handler removal
    st = os.fstat(f.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    logs.setup_logging("debug", "text", stream=f)
    log = logs.cert_logger("www")
    log.debug("d")
    log.info("i")
    log.warning("w")
    logging.getLogger("x").error("e")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    f.flush()
    out = (tmp_path / "stderr").read_text().splitlines()
    f.close()
    assert out[:4] == ["<7>[www] d", "<6>[www] i", "<4>[www] w", "<3>e"]
    assert out[4] == "<3>[www] failed"
    assert all(line.startswith("<3>") for line in out[5:]) and "ValueError: boom" in out[-1]


def test_journal_stream_for_another_file_is_ignored(monkeypatch, tmp_path):
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    with open(tmp_path / "stderr", "w+") as f:
        assert logs.journal_stream_matches(f) is False
    assert logs.journal_stream_matches(io.StringIO()) is False


def test_json_shape():
    buf = io.StringIO()
    logs.setup_logging("info", "json", stream=buf)
    logs.cert_logger("www").bind(provider="cdn", target="img.example.com").info(
        "bound %s", "0a1b", extra={"attempt": 2})
    logging.getLogger("alicertd.cycle").info("plain")
    first, second = (json.loads(line) for line in lines(buf))
    assert set(first) == {"ts", "level", "logger", "msg", "certificate", "provider", "target", "attempt"}
    assert first["level"] == "info" and first["logger"] == "alicertd" and first["msg"] == "bound 0a1b"
    assert (first["certificate"], first["provider"], first["target"], first["attempt"]) == (
        "www", "cdn", "img.example.com", 2)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert set(second) == {"ts", "level", "logger", "msg"}


def test_json_exception():
    buf = io.StringIO()
    logs.setup_logging("info", "json", stream=buf)
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        logs.cert_logger("www").exception("oops")
    obj = json.loads(lines(buf)[0])
    assert obj["level"] == "error" and "ZeroDivisionError" in obj["exc"]


# generated per run: no key material is committed, not even a test one
PEM = private_key_to_pem(generate_private_key("ec256"))


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_redaction(fmt):
    buf = io.StringIO()
    logs.setup_logging("debug", fmt, stream=buf)
    logs.register_secret("AKSecretValue12345")
    logs.register_secret(PEM)
    logs.register_secret("abc")  # too short to redact safely: ignored
    log = logs.cert_logger("www")
    log.info("secret in args: %s", "AKSecretValue12345")
    log.info("secret in message AKSecretValue12345 and dict %s", {"k": "AKSecretValue12345"})
    log.debug("key:\n%s", PEM)
    log.info("one line %s", "".join(PEM.splitlines()[1:-1]))
    log.info("extra field", extra={"detail": "x AKSecretValue12345"})
    log.info("short values stay: abc")
    try:
        raise RuntimeError("AKSecretValue12345")
    except RuntimeError:
        log.exception("failed")
    text = buf.getvalue()
    assert "AKSecretValue12345" not in text
    for body_line in PEM.splitlines()[1:-1]:
        assert body_line not in text
    assert "BEGIN PRIVATE KEY" in text  # the header stays readable
    assert text.count("***") >= 7
    assert "short values stay: abc" in text


def test_sdk_loggers_clamped_even_at_debug():
    buf = io.StringIO()
    logs.setup_logging("debug", "text", stream=buf)
    sdk = logging.getLogger("aliyunsdkcore.client")
    assert not sdk.isEnabledFor(logging.INFO)
    sdk.debug("Request received. Params: {'SSLPri': '-----BEGIN PRIVATE KEY-----'}")
    sdk.info("info from the sdk")
    http = logging.getLogger("aliyunsdkcore.http.http_response")  # sets itself to DEBUG at import
    assert not http.isEnabledFor(logging.DEBUG)
    assert not [h for h in http.handlers if not isinstance(h, logging.NullHandler)]
    http.debug("> GET /?SSLPri=secret")
    logging.getLogger("urllib3.connectionpool").debug('"POST /robot/send?access_token=t HTTP/1.1" 200')
    sdk.error("ServerException occurred. Host:127.0.0.1 ...")  # we report failures ourselves
    sdk.critical("sdk critical is kept")
    logging.getLogger("alicertd").debug("our debug is kept")
    out = buf.getvalue()
    assert "SSLPri" not in out and "info from the sdk" not in out and "access_token" not in out
    assert "ServerException" not in out
    assert "sdk critical is kept" in out and "our debug is kept" in out


def test_sdk_clamp_survives_the_sdk_lowering_its_level():
    """aliyunsdkcore's set_stream_logger() sets DEBUG on its logger; our handler still drops it."""
    buf = io.StringIO()
    logs.setup_logging("debug", "text", stream=buf)
    logging.getLogger("aliyunsdkcore").setLevel(logging.DEBUG)
    logging.getLogger("aliyunsdkcore.client").debug("Params: SSLPri=k")
    assert "SSLPri" not in buf.getvalue()


def test_setup_twice_replaces_the_handler():
    a, b = io.StringIO(), io.StringIO()
    logs.setup_logging("info", "text", stream=a)
    logs.setup_logging("info", "json", stream=b)
    logging.getLogger("alicertd").info("once")
    assert a.getvalue() == "" and len(lines(b)) == 1


def test_bad_arguments():
    with pytest.raises(ValueError):
        logs.setup_logging("loud", "text")
    with pytest.raises(ValueError):
        logs.setup_logging("info", "xml")


def test_secrets_reach_the_filter_from_where_they_are_born(tmp_path, monkeypatch):
    """register_secret is only worth something if the config, the credentials and the issued
    keys are actually handed to it: load a config through the CLI's loader, make credentials
    and a certificate bundle, and log each secret through the SDK's own logger names."""
    import argparse
    from datetime import UTC, datetime

    from daemon import cli
    from providers.aliyun.credentials import Credentials
    from providers.base import CertificateBundle

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "cfgSecretFromEnv123")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'''
state_dir = "{tmp_path / 'state'}"
[acme]
directory = "https://127.0.0.1:14000/dir"
eab_kid = "kid-1"
eab_hmac_key = "eabHmacKeyValue456"
[aliyun]
access_key_id = "LTAI5tExampleKeyId"
access_key_secret = "${{ALIBABA_CLOUD_ACCESS_KEY_SECRET}}"
[aliyun.accounts.media]
access_key_id = "LTAI5tMediaKeyId00"
access_key_secret = "mediaSecretValue789"
security_token = "mediaStsTokenValue000"
[[notify]]
kind = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send?access_token=robotTokenValue321"
secret = "SECrobotSigningSecret"
[[certificate]]
name = "www"
domains = ["example.com"]
''')
    buf = io.StringIO()
    logs.setup_logging("debug", "text", stream=buf)
    cli._load(argparse.Namespace(config=str(cfg)))
    Credentials("STS.NT1example", "stsSecretFromMetadata", "stsTokenFromMetadata")
    key = private_key_to_pem(generate_private_key("ec256"))
    now = datetime.now(UTC)
    CertificateBundle("www", ("example.com",), "-----BEGIN CERTIFICATE-----\n", key, "0a", "ff",
                      now, now, "Pebble")
    secrets = ["cfgSecretFromEnv123", "eabHmacKeyValue456", "mediaSecretValue789",
               "mediaStsTokenValue000", "robotTokenValue321", "SECrobotSigningSecret",
               "stsSecretFromMetadata", "stsTokenFromMetadata", "".join(key.splitlines()[1:-1])]
    for secret in secrets:
        logging.getLogger("alicertd").warning("request params: %s", {"AccessKeySecret": secret})
    text = buf.getvalue()
    assert [s for s in secrets if s in text] == []
    assert text.count("***") >= len(secrets)
