"""The ACME account commands, through the CLI, against Pebble: register, show, rollover,
deactivate, the directory, and revoke."""

from __future__ import annotations

import json
import stat

from tests.e2e.helpers import pebble_new_accounts
from tests.support.world import World


def _json(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_account_lifecycle(world: World, tmp_path):
    config = world.write_config(tmp_path, [world.cert("www", ["example.com"])])
    state = tmp_path / "state"

    shown = world.cli(config, "account", "show")
    assert shown.returncode == 1 and "no ACME account" in shown.stderr and "Traceback" not in shown.stderr

    registered = _json(world.cli(config, "account", "register", "--json"))
    assert registered["status"] == "valid"
    assert registered["contact"] == ["mailto:ops@example.com"]
    assert registered["url"].startswith(world.pebble.directory_url.rsplit("/", 1)[0])
    assert stat.S_IMODE((state / "account" / "key.pem").stat().st_mode) == 0o600

    again = _json(world.cli(config, "account", "register", "--json"))
    assert again["url"] == registered["url"], "registering twice must not make a second account"

    info = _json(world.cli(config, "account", "show", "--json"))
    assert {k: info[k] for k in ("url", "status", "contact", "thumbprint")} == \
        {k: registered[k] for k in ("url", "status", "contact", "thumbprint")}

    # A lost account URL is found again with onlyReturnExisting, not re-registered.
    (state / "account" / "account.json").unlink()
    recovered = _json(world.cli(config, "account", "show", "--json"))
    assert recovered["url"] == registered["url"]

    rolled = _json(world.cli(config, "account", "rollover", "--json"))
    assert rolled["url"] == registered["url"]
    assert rolled["thumbprint"] != registered["thumbprint"]
    assert rolled["previous_thumbprint"] == registered["thumbprint"]
    assert not (state / "account" / "key.next.pem").exists()
    after = _json(world.cli(config, "account", "show", "--json"))
    assert after["thumbprint"] == rolled["thumbprint"] and after["status"] == "valid"

    refused = world.cli(config, "account", "deactivate")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    gone = _json(world.cli(config, "account", "deactivate", "--yes", "--json"))
    assert gone["status"] == "deactivated"


def test_directory_command(world: World, tmp_path):
    config = world.write_config(tmp_path, [world.cert("www", ["example.com"])])
    doc = _json(world.cli(config, "acme", "directory", "--json"))
    assert doc["url"] == world.pebble.directory_url
    assert doc["renewalInfo"] and doc["newOrder"]
    assert set(doc["profiles"]) >= {"default", "shortlived"}
    assert not (tmp_path / "state").exists(), "reading the directory writes nothing"


def test_directory_unreachable_is_one_line(world: World, tmp_path):
    config = world.write_config(tmp_path, [world.cert("www", ["example.com"])],
                                extra={"acme": {"directory": "https://127.0.0.1:9/dir"}})
    proc = world.cli(config, "acme", "directory")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("alicertd: ") and "127.0.0.1:9" in last


def test_revoke_then_the_next_run_replaces_it(world: World, tmp_path):
    config = world.write_config(tmp_path, [world.cert("www", ["cdn.example.com"], cdn=["cdn.example.com"])])
    assert world.cli(config, "--run-now").returncode == 0
    first = World.chain_serial(tmp_path / "state", "www")

    revoked = world.cli(config, "revoke", "www", "--reason", "superseded")
    assert revoked.returncode == 0, revoked.stderr
    assert first in revoked.stdout
    assert world.pebble.cert_status(first).get("Status", "").lower() == "revoked"

    plan = world.cli(config, "--run-now", "--dry-run")
    assert plan.returncode == 0 and "revoked" in plan.stdout  # a plan could be made: it says "issue"
    assert world.cli(config, "--run-now").returncode == 0
    second = World.chain_serial(tmp_path / "state", "www")
    assert second != first
    assert world.served_serial("cdn.example.com") == second


def test_revoke_twice_is_success_and_recorded(world: World, tmp_path):
    config = world.write_config(tmp_path, [world.cert("www", ["cdn.example.com"], cdn=["cdn.example.com"])])
    assert world.cli(config, "--run-now").returncode == 0
    first = World.chain_serial(tmp_path / "state", "www")
    assert world.cli(config, "revoke", "www").returncode == 0

    again = world.cli(config, "revoke", "www")  # alreadyRevoked: what a lost first answer looks like

    assert again.returncode == 0, again.stderr
    assert "already revoked" in again.stdout and first in again.stdout
    runtime = json.loads((tmp_path / "state" / "runtime" / "www.json").read_text())
    assert runtime["revoked_serial"] == first


def test_revoke_without_an_account_key_signs_with_the_certificate_key(world: World, tmp_path):
    config = world.write_config(tmp_path, [world.cert("www", ["cdn.example.com"], cdn=["cdn.example.com"])])
    assert world.cli(config, "--run-now").returncode == 0
    first = World.chain_serial(tmp_path / "state", "www")
    account_dir = tmp_path / "state" / "account"
    for path in account_dir.iterdir():  # a state dir restored without its account
        path.unlink()
    accounts_before = pebble_new_accounts(world)

    proc = world.cli(config, "revoke", "www", "--reason", "keyCompromise")

    assert proc.returncode == 0, proc.stderr
    assert world.pebble.cert_status(first).get("Status", "").lower() == "revoked"
    assert pebble_new_accounts(world) == accounts_before, "an orphan account was registered to revoke"
    assert not any(account_dir.iterdir()), "revoking created an account key"


def test_revoke_unknown_name(world: World, tmp_path):
    config = world.write_config(tmp_path, [world.cert("www", ["example.com"])])
    proc = world.cli(config, "revoke", "api")
    assert proc.returncode == 2 and "'api'" in proc.stderr
