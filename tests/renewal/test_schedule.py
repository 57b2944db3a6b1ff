"""#12 item 4 and 7, the pure parts: the renewal time the daemon wakes for (ARI window first,
else one third left, or half of the lifetime under 10 days), jitter that never leaves the
window, the wake-up the daemon asks its scheduler for, and rateLimited's Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from daemon import planner as p
from daemon.service import next_wakeup
from tests.renewal.helpers import config, store_with_certificate

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def issued(lifetime: timedelta, ari=None) -> p.IssuedState:
    return p.IssuedState(serial="0a", not_before=T0, not_after=T0 + lifetime, domains=("example.com",),
                         key_type="ec256", ari_window=ari)


@pytest.mark.parametrize(("lifetime", "expected"), [
    (timedelta(days=90), T0 + timedelta(days=60)),  # one third left
    (timedelta(days=45), T0 + timedelta(days=30)),
    (timedelta(hours=160), T0 + timedelta(hours=80)),  # under 10 days: half
    (timedelta(minutes=6), T0 + timedelta(minutes=3)),
])
def test_the_lifetime_rule(lifetime, expected):
    s = p.renewal_schedule("www", issued(lifetime), None, now=T0)
    assert s.at == expected and s.why == "lifetime rule"
    assert s.at < s.latest <= T0 + lifetime


def test_the_ari_window_comes_first_and_jitter_stays_inside_it():
    window = (T0 + timedelta(days=59), T0 + timedelta(days=61))
    s = p.renewal_schedule("www", issued(timedelta(days=90), window), None, now=T0)
    assert window[0] <= s.at <= s.latest <= window[1] and "ARI" in s.why
    rng = random.Random(1)
    for _ in range(200):
        assert s.at <= p.wake_time(s, 10 * 86400, rng) <= window[1]  # a huge jitter is cut to the window


def test_an_ari_window_spanning_the_whole_lifetime_is_narrowed():
    """Pebble answers [notBefore, notAfter] for certificates of minutes: picking near either
    end would mean a reissue at once or an expiry before the rollout."""
    lifetime = timedelta(minutes=1)
    s = p.renewal_schedule("www", issued(lifetime, (T0, T0 + lifetime)), None, now=T0)
    assert T0 + lifetime / 3 <= s.at <= T0 + lifetime * 5 / 6


def test_a_past_window_means_now():
    past = (T0 - timedelta(hours=2), T0 - timedelta(hours=1))
    d = p.plan_certificate(type("C", (), {"name": "www", "domains": ("example.com",), "key_type": "ec256"})(),
                           issued(timedelta(days=90), past), renew_before_days=None, force=False,
                           now=T0 + timedelta(days=1))
    assert d.due and d.reason == p.ARI_WINDOW


def test_a_backoff_retry_comes_first():
    fs = p.FailureState(1, T0, T0 + timedelta(minutes=10))
    s = p.renewal_schedule("www", issued(timedelta(days=90)), None, failure=fs, now=T0)
    assert s.at == fs.next_attempt and "failure" in s.why


def test_rate_limited_retry_after_is_honoured_by_the_backoff():
    fs = p.backoff_after_failure(None, T0, cap_seconds=12 * 3600, retry_after=3 * 3600)
    assert fs.next_attempt == T0 + timedelta(hours=3)
    assert p.backoff_after_failure(None, T0, 12 * 3600).next_attempt == T0 + p.FIRST_BACKOFF


def test_the_daemon_wakes_for_the_renewal_not_the_interval(tmp_path):
    cfg = config(tmp_path, schedule={"interval": "3d", "jitter": "0s"})
    store, bundle = store_with_certificate(cfg, days=6)
    at = bundle.not_before + (bundle.not_after - bundle.not_before) / 2
    store.write_runtime("www", {"next_renewal": {"at": p.format_time(at), "why": "lifetime rule",
                                                 "latest": p.format_time(at + timedelta(hours=12))}})
    wake = next_wakeup(cfg, store, datetime.now(UTC))
    assert abs((wake - at).total_seconds()) < 1, "the daemon would wait for its 3-day interval"


def test_a_wake_up_in_the_past_is_soon_but_not_a_busy_loop(tmp_path):
    cfg = config(tmp_path)
    store, _ = store_with_certificate(cfg)
    now = datetime.now(UTC)
    store.write_runtime("www", {"next_attempt": p.format_time(now - timedelta(hours=1))})
    assert now + timedelta(seconds=0.5) <= next_wakeup(cfg, store, now) <= now + timedelta(seconds=5)


def test_a_rate_limited_issuance_backs_off_for_the_cas_retry_after(tmp_path):
    from daemon.acme.problems import RateLimited
    from daemon.cycle import Cycle
    from daemon.state import StateStore
    from tests.renewal.helpers import ScriptedIssuer

    class Limited(ScriptedIssuer):
        def issue(self, *args, **kw):
            raise RateLimited("too many certificates for this exact set of names", status=429, retry_after=7200)

    cfg = config(tmp_path)
    store = StateStore(cfg.state_dir)
    ca = Limited()
    with store.lock(5):
        result = Cycle(cfg, store, issuer_factory=ca.factory).run()
    assert result.certificates[0].action == "failed"
    runtime = store.read_runtime("www")
    wait = datetime.fromisoformat(runtime["next_attempt"].replace("Z", "+00:00")) - \
        datetime.fromisoformat(runtime["last_failure"].replace("Z", "+00:00"))
    assert wait >= timedelta(hours=2), "the backoff ignored the CA's Retry-After"
    assert runtime["next_renewal"]["at"] == runtime["next_attempt"]


def test_worker_threads_see_the_key_of_a_recovered_rollover(tmp_path):
    import threading

    from daemon.issuer import Issuer
    from daemon.state import StateStore

    class Client:
        def __init__(self, key):
            self.account_key, self.account_url = key, None

    class Keeper:
        def load_key(self, create):
            return "old key"

        def client(self, key):
            return Client(key)

        def ensure_account(self, client):
            client.account_key = "rolled-over key"  # what _recover_rollover does
            return "https://ca.test/acct/1"

    cfg = config(tmp_path)
    issuer = Issuer(cfg, StateStore(cfg.state_dir))
    issuer.keeper = Keeper()
    early = issuer._client(with_account=False)  # noqa: SLF001 - this thread's client, made first
    t = threading.Thread(target=lambda: issuer._client(with_account=True))  # noqa: SLF001
    t.start()
    t.join()
    again = issuer._client(with_account=True)  # noqa: SLF001
    assert again is early and again.account_key == "rolled-over key"
