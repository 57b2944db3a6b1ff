"""``[[notify]] kind = "webhook"``: a loopback receiver gets a ``renewal`` event per issuance
and a ``failure`` event when a target fails (while the other certificate still goes through)."""

from __future__ import annotations

from tests.e2e.helpers import WebhookReceiver, assert_serves, net_cert, running_daemon, www_cert
from tests.support.world import World, wait_for


def test_webhook_gets_renewal_events_after_issuance(world, tmp_path):
    with WebhookReceiver() as hook:
        config = world.write_config(tmp_path, [www_cert(), net_cert()],
                                    extra={"notify": [{"kind": "webhook", "url": hook.url}]})
        proc = world.cli(config, "--run-now")
        assert proc.returncode == 0, proc.stderr
        state = tmp_path / "state"

        renewals = {e["certificate"]: e for e in hook.bodies("renewal")}
        assert set(renewals) == {"www", "net"}
        for name, event in renewals.items():
            assert event["source"] == "alicertd"
            assert event["details"]["serial"] == World.chain_serial(state, name)
            assert event["details"]["not_after"].endswith("Z")
        assert hook.bodies("failure") == []

        # Nothing happens on an idle run, so nothing is said.
        count = len(hook.events)
        assert world.cli(config, "--run-now").returncode == 0
        assert len(hook.events) == count


def test_webhook_gets_a_failure_event_when_a_target_fails(world, tmp_path):
    broken = World.cert("www", ["example.com", "*.example.com"], cdn=["cdn.example.com", "gone.example.com"])
    with WebhookReceiver() as hook:
        config = world.write_config(tmp_path, [broken, net_cert()],
                                    extra={"notify": [{"kind": "webhook", "url": hook.url,
                                                       "events": ["failure", "renewal"]}]})
        proc = world.cli(config, "--run-now")

        assert proc.returncode == 1, proc.stdout + proc.stderr
        state = tmp_path / "state"
        assert_serves(world, state, "www", ["cdn.example.com"])  # the good target still got it
        assert World.chain_serial(state, "net"), "the other certificate still proceeds"
        failures = hook.bodies("failure")
        assert len(failures) == 1
        text = failures[0]["text"]
        assert "gone.example.com" in text and "InvalidDomain.NotFound" in text
        assert "cdn.example.com" not in text.replace("gone.example.com", "")
        assert {e["certificate"] for e in hook.bodies("renewal")} == {"www", "net"}


def test_daemon_notifies_too(world, tmp_path):
    with WebhookReceiver() as hook:
        config = world.write_config(tmp_path, [net_cert()],
                                    extra={"notify": [{"kind": "webhook", "url": hook.url}]})
        with running_daemon(world, config, tmp_path / "daemon.log"):
            event = wait_for(lambda: hook.bodies("renewal"), 30, "a renewal event from the daemon")[0]
        assert event["certificate"] == "net"
        assert event["details"]["serial"] == World.chain_serial(tmp_path / "state", "net")
