"""Notification senders against a local HTTP receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from daemon.config import NotifyConfig
from daemon.notify import Event, Notifier, dingtalk_sign, feishu_sign, redact_url

NOW = 1_764_151_200.5  # 2025-11-26T10:00:00.5Z
TOKEN = "tok3n5ecretvalue0123456789"
log = logging.getLogger("test.notify")


class Receiver:
    """Captures POSTs; answers with the status/body queued in ``replies`` (default 200 + ok)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.replies: list[tuple[int, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                outer.requests.append({"path": self.path, "body": json.loads(body),
                                       "ctype": self.headers.get("Content-Type")})
                status, reply = outer.replies.pop(0) if outer.replies else (200, b'{"errcode":0,"errmsg":"ok"}')
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rx():
    r = Receiver()
    yield r
    r.close()


def notifier(configs, **kw):
    kw.setdefault("clock", lambda: NOW)
    kw.setdefault("sleep", lambda s: None)
    kw.setdefault("timeout", 2.0)
    return Notifier(configs, log, **kw)


EVENT = Event("renewal", "www", "Renewed www", "New certificate issued.",
              {"serial": "0a1b", "not_after": "2026-02-24T10:00:00Z", "empty": None})


def test_webhook_posts_the_event_as_json(rx):
    n = notifier([NotifyConfig(kind="webhook", url=f"{rx.base}/hook")])
    assert n.send(EVENT) == 1
    (req,) = rx.requests
    assert req["path"] == "/hook"
    assert req["ctype"].startswith("application/json")
    assert req["body"] == {
        "source": "alicertd", "kind": "renewal", "certificate": "www", "title": "Renewed www",
        "text": "New certificate issued.",
        "details": {"serial": "0a1b", "not_after": "2026-02-24T10:00:00Z", "empty": None},
        "time": "2025-11-26T10:00:00Z",
    }


def test_dingtalk_markdown_and_signature(rx):
    secret = "SECabc123"
    n = notifier([NotifyConfig(kind="dingtalk", url=f"{rx.base}/robot/send?access_token={TOKEN}", secret=secret)])
    assert n.send(EVENT) == 1
    (req,) = rx.requests
    q = parse_qs(urlsplit(req["path"]).query)
    assert q["access_token"] == [TOKEN]
    assert q["timestamp"] == ["1764151200500"]
    expected = base64.b64encode(hmac.new(secret.encode(), f"1764151200500\n{secret}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert q["sign"] == [expected]  # parse_qs undoes the URL encoding of + / =
    assert expected == dingtalk_sign(secret, 1764151200500)
    body = req["body"]
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "Renewed www"
    assert body["markdown"]["text"].startswith("### Renewed www\n\nNew certificate issued.")
    assert "- serial: 0a1b" in body["markdown"]["text"]
    assert "empty" not in body["markdown"]["text"]


def test_dingtalk_without_secret_has_no_signature(rx):
    n = notifier([NotifyConfig(kind="dingtalk", url=f"{rx.base}/robot/send?access_token={TOKEN}")])
    n.send(EVENT)
    assert set(parse_qs(urlsplit(rx.requests[0]["path"]).query)) == {"access_token"}


def test_feishu_text_and_signature(rx):
    secret = "fs-secret"
    n = notifier([NotifyConfig(kind="feishu", url=f"{rx.base}/open-apis/bot/v2/hook/{TOKEN}", secret=secret)])
    rx.replies.append((200, b'{"code":0,"msg":"success","data":{}}'))
    assert n.send(EVENT) == 1
    body = rx.requests[0]["body"]
    assert body["msg_type"] == "text"
    assert body["content"]["text"].splitlines()[:2] == ["Renewed www", "New certificate issued."]
    assert body["timestamp"] == "1764151200"
    expected = base64.b64encode(hmac.new(f"1764151200\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()
    assert body["sign"] == expected == feishu_sign(secret, 1764151200)


def test_wecom_markdown(rx):
    n = notifier([NotifyConfig(kind="wecom", url=f"{rx.base}/cgi-bin/webhook/send?key={TOKEN}")])
    assert n.send(EVENT) == 1
    body = rx.requests[0]["body"]
    assert set(body) == {"msgtype", "markdown"}
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["content"].startswith("**Renewed www**\nNew certificate issued.\n> serial: 0a1b")


def test_wecom_content_truncated_to_4096_bytes(rx):
    n = notifier([NotifyConfig(kind="wecom", url=f"{rx.base}/send?key=k")])
    n.send(Event("failure", "www", "失败", "证书" * 3000))
    assert len(rx.requests[0]["body"]["markdown"]["content"].encode()) <= 4096


def test_events_filter_and_warn_days(rx):
    cfgs = [
        NotifyConfig(kind="webhook", url=f"{rx.base}/failures", events=("failure",)),
        NotifyConfig(kind="webhook", url=f"{rx.base}/expiring", events=("expiring",), warn_days=7),
    ]
    n = notifier(cfgs)
    assert n.send(EVENT) == 0
    assert n.send(Event("expiring", "www", "t", "x", {"days_left": 8})) == 0
    assert n.send(Event("expiring", "www", "t", "x", {"days_left": 7})) == 1
    assert n.send(Event("failure", "www", "t", "x")) == 1
    assert [r["path"] for r in rx.requests] == ["/expiring", "/failures"]


def test_retry_once_then_succeed(rx):
    rx.replies.append((503, b"busy"))
    n = notifier([NotifyConfig(kind="webhook", url=f"{rx.base}/hook")])
    assert n.send(EVENT) == 1
    assert len(rx.requests) == 2


def test_failing_receiver_logs_without_token_and_does_not_raise(rx, caplog):
    rx.replies += [(500, b"x"), (500, b"x")]
    n = notifier([NotifyConfig(kind="dingtalk", url=f"{rx.base}/robot/send?access_token={TOKEN}", secret="s")])
    with caplog.at_level(logging.DEBUG, logger="test.notify"):
        assert n.send(EVENT) == 0
    assert len(rx.requests) == 2  # one retry
    assert "could not send renewal event: HTTP 500" in caplog.text
    assert TOKEN not in caplog.text and "access_token" not in caplog.text


def test_robot_error_code_is_a_failure_and_not_retried(rx, caplog):
    rx.replies.append((200, b'{"errcode":310000,"errmsg":"sign not match"}'))
    n = notifier([NotifyConfig(kind="dingtalk", url=f"{rx.base}/robot/send?access_token={TOKEN}", secret="s")])
    with caplog.at_level(logging.WARNING, logger="test.notify"):
        assert n.send(EVENT) == 0
    assert len(rx.requests) == 1
    assert "errcode 310000: sign not match" in caplog.text


def test_unreachable_receiver_logs_without_token(caplog):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    n = notifier([NotifyConfig(kind="wecom", url=f"http://127.0.0.1:{port}/cgi-bin/webhook/send?key={TOKEN}"),
                  NotifyConfig(kind="feishu", url=f"http://127.0.0.1:{port}/open-apis/bot/v2/hook/{TOKEN}")])
    with caplog.at_level(logging.WARNING, logger="test.notify"):
        assert n.send(Event("failure", "www", "t", "x")) == 0
    assert "ConnectionError" in caplog.text
    assert caplog.text.count("could not send failure event") == 2
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("url, shown", [
    ("https://oapi.dingtalk.com/robot/send?access_token=abc", "https://oapi.dingtalk.com/…"),
    ("https://open.feishu.cn/open-apis/bot/v2/hook/abc", "https://open.feishu.cn/…"),
    ("http://[::1]:8080/x?y=1", "http://[::1]:8080/…"),
    ("http://example.com", "http://example.com"),
    ("https://user:pw@example.com/", "https://example.com"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown
