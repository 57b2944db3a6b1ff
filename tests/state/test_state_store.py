"""The state store: atomic replacement that survives a kill, modes, the lock, corruption."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daemon.state import DnsJournal, StateCorrupt, StateLocked, StateStore, atomic_write

REPO = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("stop_at", ["written", "fsynced"])
def test_kill_between_write_and_rename_keeps_the_old_file(tmp_path: Path, stop_at: str):
    """A child process writes a new version and is SIGKILLed at a chosen point before the
    rename: the target still holds the complete old version, and the temp file it left is
    swept on the next open."""
    target = tmp_path / "state" / "account" / "account.json"
    store = StateStore(tmp_path / "state")
    store.ensure()
    store.write_account({"url": "https://ca.example/acct/1", "version": "old"})
    child = _child(f"""
        import os, sys
        from pathlib import Path
        import daemon.state as state
        real_fsync, real_replace = os.fsync, os.replace
        def pause(point):
            if point == {stop_at!r}:
                sys.stdout.write("paused\\n"); sys.stdout.flush()
                os.kill(os.getpid(), 19)  # SIGSTOP: the parent kills us here
        def fsync(fd):
            pause("written"); real_fsync(fd); pause("fsynced")
        state.os.fsync = fsync
        store = state.StateStore(Path({str(tmp_path / 'state')!r}))
        store.write_account({{"url": "https://ca.example/acct/1", "version": "new" * 1000}})
        sys.stdout.write("finished\\n")
    """)
    assert child.stdout.readline().strip() == "paused"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert json.loads(target.read_text())["version"] == "old"
    leftovers = [p for p in target.parent.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers, "the kill happened after the temp file was created"
    StateStore(tmp_path / "state").ensure()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".tmp-")]
    assert json.loads(target.read_text())["version"] == "old"


def test_modes_from_the_first_byte(tmp_path: Path):
    store = StateStore(tmp_path / "state")
    store.ensure()
    assert mode(store.root) == 0o700
    store.write_account_key(b"-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
    assert mode(store.root / "account" / "key.pem") == 0o600
    store.commit_certificate("www", "0abc", "KEY\n", "CHAIN\n", {"serial": "0abc"})
    current = store.root / "certificates" / "www"
    assert mode(current / "privkey.pem") == 0o600
    assert (current / "fullchain.pem").read_text() == "CHAIN\n"
    for sub in ("account", "archive", "certificates", "deploy", "runtime", "pending"):
        assert mode(store.root / sub) == 0o700


def test_atomic_write_creates_with_final_mode(tmp_path: Path, monkeypatch):
    """The temp file is opened with 0600: there is no window in which the key is readable."""
    seen = []
    real_open = os.open

    def spy(path, flags, mode_=0o777, *a, **kw):
        seen.append((str(path), mode_))
        return real_open(path, flags, mode_, *a, **kw)
    monkeypatch.setattr("daemon.state.os.open", spy)
    atomic_write(tmp_path / "key.pem", b"secret", 0o600)
    assert any(".tmp-key.pem" in p and m == 0o600 for p, m in seen)
    assert mode(tmp_path / "key.pem") == 0o600


def test_state_dir_readable_by_others_is_tightened(tmp_path: Path):
    root = tmp_path / "state"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    StateStore(root).ensure()
    assert mode(root) == 0o700


def test_key_and_chain_change_together(tmp_path: Path):
    store = StateStore(tmp_path / "s")
    store.ensure()
    store.commit_certificate("www", "01", "KEY1\n", "CHAIN1\n", {"serial": "01"})
    store.commit_certificate("www", "02", "KEY2\n", "CHAIN2\n", {"serial": "02"})
    current = store.read_certificate("www")
    assert (current.key_pem, current.fullchain_pem, current.meta["serial"]) == ("KEY2\n", "CHAIN2\n", "02")
    assert os.path.islink(store.root / "certificates" / "www")


def test_lock_excludes_a_second_process(tmp_path: Path):
    store = StateStore(tmp_path / "state")
    with store.lock(timeout=1):
        child = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            from pathlib import Path
            from daemon.state import StateStore, StateLocked
            try:
                with StateStore(Path({str(tmp_path / 'state')!r})).lock(timeout=0.3):
                    print("acquired")
            except StateLocked as exc:
                print("locked:", exc)
        """)], cwd=REPO, capture_output=True, text=True, timeout=30)
        assert child.stdout.startswith("locked:"), child.stdout + child.stderr
        assert "another alicertd process" in child.stdout
    with store.lock(timeout=1):  # released: can be taken again
        pass


def test_lock_in_the_same_process_times_out(tmp_path: Path):
    store = StateStore(tmp_path / "state")
    # flock is per open file: a second open in the same process is refused too
    with store.lock(timeout=1), pytest.raises(StateLocked), StateStore(tmp_path / "state").lock(timeout=0.1):
        pass


def test_lock_is_released_when_the_holder_dies(tmp_path: Path):
    child = _child(f"""
        import os, sys
        from pathlib import Path
        from daemon.state import StateStore
        with StateStore(Path({str(tmp_path / 'state')!r})).lock(timeout=1):
            sys.stdout.write("holding\\n"); sys.stdout.flush()
            os.kill(os.getpid(), 19)
    """)
    assert child.stdout.readline().strip() == "holding"
    with pytest.raises(StateLocked), StateStore(tmp_path / "state").lock(timeout=0.2):
        pass
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    with StateStore(tmp_path / "state").lock(timeout=2):
        pass


def test_corrupt_json_is_reported_not_replaced(tmp_path: Path):
    store = StateStore(tmp_path / "state")
    store.ensure()
    bad = store.root / "account" / "account.json"
    bad.write_text('{"url": "https://ca.example/acct/1", ')
    with pytest.raises(StateCorrupt, match="account.json is not valid JSON"):
        store.read_account()
    assert bad.read_text() == '{"url": "https://ca.example/acct/1", '


def test_unreadable_account_key_is_never_regenerated(tmp_path: Path):
    from daemon.config import AcmeConfig
    from daemon.issuer import AccountKeeper

    store = StateStore(tmp_path / "state")
    store.ensure()
    key = store.root / "account" / "key.pem"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\ntruncated")
    config = type("C", (), {"acme": AcmeConfig(directory="https://ca.example/dir", directory_name="x")})()
    with pytest.raises(StateCorrupt, match="not a readable private key"):
        AccountKeeper(config, store).load_key(create=True)
    assert key.read_bytes() == b"-----BEGIN PRIVATE KEY-----\ntruncated"


def test_dangling_current_link_is_reported(tmp_path: Path):
    store = StateStore(tmp_path / "state")
    store.ensure()
    os.symlink("../archive/www/ff", store.root / "certificates" / "www")
    with pytest.raises(StateCorrupt, match="missing archive"):
        store.read_certificate("www")


def test_journal_roundtrip_and_names(tmp_path: Path):
    journal = DnsJournal(tmp_path)
    a = journal.add("alidns", {"rr": "_acme-challenge", "value": "v1"})
    journal.add("other", {"x": 1})
    journal.update(a, {"rr": "_acme-challenge", "value": "v1", "record_id": "42"})
    assert journal.entries("alidns") == {a: {"rr": "_acme-challenge", "value": "v1", "record_id": "42"}}
    assert journal.count() == 2
    journal.remove(a)
    journal.remove(a)  # idempotent
    assert journal.entries("alidns") == {}


@pytest.mark.parametrize("name", ["../x", "WWW", "", "a/b", "-x"])
def test_certificate_names_cannot_escape(tmp_path: Path, name: str):
    from daemon.state import StateError
    with pytest.raises(StateError):
        StateStore(tmp_path).read_certificate(name)


def test_example_config_passes_check_config(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALICERTD_")}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID="LTAIexample", ALIBABA_CLOUD_ACCESS_KEY_SECRET="example-secret")
    proc = subprocess.run([sys.executable, "-m", "daemon", "--config", str(REPO / "config" / "alicertd.example.toml"),
                           "check-config"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "OK (4 certificate(s): www, api, shop, edge)" in proc.stdout
    assert "example-secret" not in proc.stdout + proc.stderr


def test_a_renewal_never_reuses_the_current_key(tmp_path: Path):
    """A crash between committing a certificate and removing its pending key leaves the
    current key as 'pending': the next order must get a fresh key, not that one."""
    from daemon.config import CertificateConfig
    from daemon.issuer import Issuer
    from daemon.keys import generate_private_key, private_key_to_pem

    store = StateStore(tmp_path / "state")
    store.ensure()
    current = private_key_to_pem(generate_private_key("ec256"))
    store.commit_certificate("www", "01", current, "CHAIN\n", {"serial": "01"})
    store.write_pending_key("www", current.encode("ascii"))
    issuer = Issuer(type("C", (), {})(), store)
    key = issuer._pending_key(CertificateConfig(name="www", domains=("example.com",)))
    assert private_key_to_pem(key) != current
    assert store.read_pending_key("www").decode("ascii") == private_key_to_pem(key)

    crashed = private_key_to_pem(generate_private_key("ec256"))  # an order in flight: kept
    store.write_pending_key("www", crashed.encode("ascii"))
    assert private_key_to_pem(issuer._pending_key(CertificateConfig(name="www", domains=("example.com",)))) == crashed


def test_reload_record_roundtrip_and_clear(tmp_path: Path):
    store = StateStore(tmp_path / "state")
    store.ensure()
    assert store.read_reload_refused() is None
    store.write_reload_refused({"at": "2026-01-01T00:00:00Z", "reasons": ["a.toml: x: bad"]})
    path = tmp_path / "state" / "reload.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.read_reload_refused() == {"at": "2026-01-01T00:00:00Z", "reasons": ["a.toml: x: bad"]}
    store.clear_reload_refused()
    store.clear_reload_refused()  # nothing to clear: fine
    assert store.read_reload_refused() is None and not path.exists()


def test_reload_record_survives_a_sweep_of_its_temp_file(tmp_path: Path, monkeypatch):
    """Written without the state lock: another process taking the lock may sweep the temp file
    before the rename; the record is then written again, not lost."""
    store = StateStore(tmp_path / "state")
    store.ensure()
    real_replace = os.replace
    swept = []

    def replace_after_a_sweep(src, dst):
        if not swept:
            swept.append(src)
            StateStore(tmp_path / "state")._sweep_temp_files()  # as another process's lock() does
        return real_replace(src, dst)

    monkeypatch.setattr("daemon.state.os.replace", replace_after_a_sweep)
    store.write_reload_refused({"at": None, "reasons": ["r"]})
    assert swept and store.read_reload_refused() == {"at": None, "reasons": ["r"]}
