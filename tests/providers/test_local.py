"""The local deploy target: config, atomic files, reload command, read-back, verify."""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path

import pytest

from daemon.config import VerifyConfig
from providers.base import ConfigDefaults, ConfigErrors, ProviderError, VerificationError
from providers.local import LocalProvider, LocalSettings

from .certs import make_bundle
from .conftest import make_ctx
from .tlsserver import TlsServer

DEFAULTS = ConfigDefaults(region="cn-hangzhou")
PATH = "certificate[0].deploy[0]"


def parse(raw):
    errors = ConfigErrors()
    return LocalProvider.parse_config(raw, PATH, errors, DEFAULTS), errors.messages


def test_parse_config_minimal(tmp_path):
    settings, errors = parse({"directory": str(tmp_path)})
    assert errors == []
    assert settings == LocalSettings(tmp_path, (), None)
    [target] = LocalProvider.expand(settings)
    assert (target.provider, target.name, target.domain) == ("local", str(tmp_path), None)


def test_parse_config_full(tmp_path):
    settings, errors = parse({"directory": str(tmp_path), "reload_command": ["true", "x"],
                              "tls_check": "127.0.0.1:8443"})
    assert errors == []
    assert settings.reload_command == ("true", "x") and settings.tls_check == "127.0.0.1:8443"


@pytest.mark.parametrize("raw, expected", [
    ({}, [f"{PATH}.directory: missing required key"]),
    ({"directory": "relative/dir"}, [f"{PATH}.directory: 'relative/dir' is not an absolute path"]),
    ({"directory": "/x", "reload_command": "systemctl reload nginx"},
     [f"{PATH}.reload_command: expected a list of strings, got a string"]),
    ({"directory": "/x", "reload_command": []},
     [f"{PATH}.reload_command: must not be an empty list (leave it out instead)"]),
    ({"directory": "/x", "tls_check": "nohostport"},
     [f"{PATH}.tls_check: invalid address 'nohostport' (expected host:port)"]),
    ({"directory": "/x", "directry": "/y"}, [f"{PATH}.directry: unknown key"]),
])
def test_parse_config_errors(raw, expected):
    settings, errors = parse(raw)
    assert settings is None
    assert errors == expected


def target_for(directory: Path, **kw):
    settings, errors = parse({"directory": str(directory), **kw})
    assert not errors, errors
    return LocalProvider.expand(settings)[0]


def test_bind_writes_files_atomically_and_reads_back(state_dir, tmp_path):
    provider = LocalProvider(make_ctx(state_dir))
    target = target_for(tmp_path / "out")
    assert provider.read_bindings([target])[target].state == "none"
    bundle = make_bundle("www", ["example.com"])
    provider.bind(target, bundle)
    for name in ("fullchain.pem", "privkey.pem"):
        mode = stat.S_IMODE((tmp_path / "out" / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    assert (tmp_path / "out" / "privkey.pem").read_text() == bundle.key_pem
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fullchain.pem", "privkey.pem"]
    binding = provider.read_bindings([target])[target]
    assert binding.serves(bundle) and binding.serial == bundle.serial
    assert provider.verify(target, bundle, time.monotonic() + 5).serves(bundle)

    newer = make_bundle("www", ["example.com"])
    provider.bind(target, newer)
    binding = provider.read_bindings([target])[target]
    assert binding.serves(newer) and not binding.serves(bundle)
    with pytest.raises(VerificationError, match="does not hold serial"):
        provider.verify(target, bundle, time.monotonic() + 1)


def test_reload_command_runs_without_shell(state_dir, tmp_path):
    marker = tmp_path / "reloaded"
    cmd = [sys.executable, "-c", "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text('ok')",
           str(marker)]
    provider = LocalProvider(make_ctx(state_dir))
    target = target_for(tmp_path / "out", reload_command=cmd)
    provider.bind(target, make_bundle("www", ["example.com"]))
    assert marker.read_text() == "ok"


def test_reload_failure_is_one_line(state_dir, tmp_path):
    cmd = [sys.executable, "-c", "import sys; print('nginx: config test failed', file=sys.stderr); sys.exit(3)"]
    provider = LocalProvider(make_ctx(state_dir))
    target = target_for(tmp_path / "out", reload_command=cmd)
    with pytest.raises(ProviderError) as info:
        provider.bind(target, make_bundle("www", ["example.com"]))
    assert str(info.value) == f"local: {sys.executable} exited with 3: nginx: config test failed"


def test_reload_command_missing(state_dir, tmp_path):
    provider = LocalProvider(make_ctx(state_dir))
    target = target_for(tmp_path / "out", reload_command=["/nonexistent/reload"])
    with pytest.raises(ProviderError, match="^local: cannot run /nonexistent/reload: "):
        provider.bind(target, make_bundle("www", ["example.com"]))


def test_unreadable_chain_is_an_error_binding(state_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "fullchain.pem").write_text("garbage")
    target = target_for(tmp_path / "out")
    binding = LocalProvider(make_ctx(state_dir)).read_bindings([target])[target]
    assert binding.state == "error" and "not a PEM certificate chain" in binding.detail


def test_verify_with_tls_check(state_dir, tmp_path):
    bundle = make_bundle("www", ["example.com"])
    other = make_bundle("www", ["example.com"])
    with TlsServer({"example.com": bundle}, default=other) as server:
        ctx = make_ctx(state_dir, verify=VerifyConfig(tls=True, timeout=5))
        provider = LocalProvider(ctx)
        target = target_for(tmp_path / "out", tls_check=f"127.0.0.1:{server.port}")
        provider.bind(target, bundle)
        assert provider.verify(target, bundle, time.monotonic() + 5).serves(bundle)
        server.serve("example.com", other)  # the server did not reload: still the old one
        with pytest.raises(VerificationError, match=f"^local: example.com still serves serial {other.serial} after"):
            provider.verify(target, bundle, time.monotonic() + 1.5)
