"""No secret in anything alicertd prints: the AccessKey secret, the EAB HMAC key, any line of
any private key in the state dir (the account key, certificate keys, pending keys).

The first test makes the most talkative runs it can: ``--log-level debug`` (text and JSON), a
CA that requires external account binding, every kind of failed Alibaba call on the actions
that carry a private key (``SetCdnDomainSSLCertificate`` sends it as ``SSLPri``), a daemon,
a wrong AccessKey secret. The second (this file runs last) scans what every alicertd process
of the session printed, the other reliability tests' included.
"""

from __future__ import annotations

import base64
import os
import re
import signal

from tests.reliability.helpers import STATIC, WWW, assert_no_traceback
from tests.support.pebble import ensure_pebble
from tests.support.world import SECRET_ENV, World, wait_for

EAB_KID = "alicertd-reliability"


def test_talkative_runs_leak_nothing(tmp_path, transcripts):
    ensure_pebble()
    hmac_key = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    with World(eab={EAB_KID: hmac_key}) as world:
        config = world.write_config(tmp_path, [WWW, STATIC],
                                    extra={"acme": {"eab_kid": EAB_KID, "eab_hmac_key": hmac_key}})
        transcripts.secrets.add(hmac_key)
        debug = ("--log-level", "debug")
        # Failed calls of every kind on the actions that carry key material or record values.
        for action in ("SetCdnDomainSSLCertificate", "SetDomainCertificate", "AddDomainRecord"):
            world.sandbox.set_faults(action, script=["error_200", "malformed", "drop", "throttle", "internal"])

        first = transcripts.cli(world, config, "--run-now", *debug)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]
        assert " DEBUG " in first.stderr, "--log-level debug logged nothing at DEBUG"
        assert "registered ACME account" in first.stderr  # Pebble requires EAB: it was sent
        faults = [c["fault"] for c in world.sandbox.calls() if c.get("fault")]
        assert {"error_200", "malformed", "drop"} <= set(faults), faults

        world.sandbox.set_faults("SetCdnDomainSSLCertificate", script=["error_200", "drop"])
        forced = transcripts.cli(world, config, "--run-now", "--force", "www", *debug, "--log-format", "json")
        assert forced.returncode == 0, forced.stdout[-3000:] + forced.stderr[-3000:]
        for args in (("status", "--json"), ("account", "show", "--json")):
            proc = transcripts.cli(world, config, *args, *debug)
            assert proc.returncode == 0, proc.stderr

        # The daemon, at debug, for one cycle.
        log_path = tmp_path / "daemon.log"
        daemon = transcripts.spawn(world, config, *debug, log_path=log_path)
        try:
            wait_for(lambda: "cycle done" in log_path.read_text(), timeout=60, what="the daemon's cycle")
        finally:
            assert World.terminate(daemon, signal.SIGTERM) == 0

        # A wrong AccessKey secret: the error must say so without printing it.
        wrong = "wrong-secret-" + base64.b32encode(os.urandom(10)).decode().lower()
        transcripts.secrets.add(wrong)
        bad = transcripts.cli(world, config, "--run-now", "--force", "static", *debug, env={SECRET_ENV: wrong})
        assert bad.returncode == 1
        assert re.search(r"AccessKeySecret is wrong", bad.stdout + bad.stderr), bad.stdout + bad.stderr

    for proc in (first, forced, bad):
        assert_no_traceback(proc)
    state = tmp_path / "state"
    assert list(state.glob("archive/*/*/privkey.pem")) and (state / "account" / "key.pem").is_file()
    mine = [r for r in transcripts.runs if str(tmp_path) in r.what]
    assert len(mine) == 6
    leaks = [hit for hit in transcripts.leaks() if str(tmp_path) in hit]
    assert leaks == [], "\n".join(leaks)


def test_no_secret_in_any_output_of_the_session(transcripts):
    """Everything the reliability suite's alicertd processes printed, scanned at the end."""
    assert transcripts.runs, "no alicertd run was recorded"
    leaks = transcripts.leaks()
    assert transcripts.key_lines and transcripts.secrets, "nothing to look for"
    assert leaks == [], "\n".join(leaks[:50])
    print(f"\nsecret scan: {len(transcripts.runs)} runs, {len(transcripts.secrets)} secrets, "
          f"{len(transcripts.key_lines)} private key lines from {len(transcripts.state_dirs)} state dirs")
