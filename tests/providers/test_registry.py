"""Provider discovery through the ``alicertd.providers`` entry-point group."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from providers import registry
from providers.apigateway import ApiGatewayProvider
from providers.cdn import CdnProvider
from providers.local import LocalProvider

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin"


@pytest.fixture(autouse=True)
def fresh_registry():
    registry.load_providers.cache_clear()
    yield
    registry.load_providers.cache_clear()


def fake_dist(site: Path, name: str, entry_points: str, modules: dict[str, str] | None = None) -> None:
    """A minimal installed distribution: ``<name>-1.0.dist-info`` with METADATA and
    entry_points.txt, plus module files, all in ``site`` (which the test puts on sys.path)."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[alicertd.providers]\n{entry_points}\n")
    for module, text in (modules or {}).items():
        (site / f"{module}.py").write_text(text)


def test_loads_the_builtins_sorted():
    providers = registry.load_providers()
    assert list(providers) == sorted(providers)
    assert {"alidns", "apigateway", "cdn", "local"} <= set(providers)
    assert providers["cdn"] is CdnProvider
    assert providers["apigateway"] is ApiGatewayProvider
    assert registry.get("local") is LocalProvider
    assert registry.get("nope") is None
    assert {name: cls.kind for name, cls in providers.items()}.items() >= {
        "alidns": "dns", "apigateway": "deploy", "cdn": "deploy", "local": "deploy"}.items()


def test_is_cached():
    assert registry.load_providers() is registry.load_providers()


def test_import_failure_is_one_line_naming_entry_point_and_module(tmp_path, monkeypatch):
    fake_dist(tmp_path, "brokenplugin", "broken = brokenplugin_mod:Provider",
              {"brokenplugin_mod": "import a_module_that_does_not_exist\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    providers = registry.load_providers()  # lazy: a broken plugin does not break the others
    assert providers["cdn"] is CdnProvider
    with pytest.raises(registry.RegistryError) as info:
        providers["broken"]
    assert registry.lookup(providers, "broken") == (None, str(info.value))
    message = str(info.value)
    assert "\n" not in message
    assert message == ("provider entry point 'broken' = 'brokenplugin_mod:Provider' (brokenplugin 1.0): "
                       "cannot import brokenplugin_mod: ModuleNotFoundError: "
                       "No module named 'a_module_that_does_not_exist'")
    sys.modules.pop("brokenplugin_mod", None)


def test_duplicate_name_from_two_distributions_names_both(tmp_path, monkeypatch):
    fake_dist(tmp_path, "othercdn", "cdn = othercdn_mod:Cdn")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(registry.RegistryError) as info:
        registry.load_providers()
    message = str(info.value)
    assert message.startswith("provider 'cdn' is registered twice: by ")
    assert "alicertd 0.1.0 (providers.cdn:CdnProvider)" in message
    assert "othercdn 1.0 (othercdn_mod:Cdn)" in message


@pytest.mark.parametrize("body, expected", [
    ("class P:\n    kind = 'storage'\n    name = 'odd'\n    parse_config = classmethod(lambda *a: None)\n",
     "kind must be one of dns, deploy, got 'storage'"),
    ("class P:\n    kind = 'deploy'\n    name = 'other'\n    parse_config = classmethod(lambda *a: None)\n",
     "the class's name is 'other', not 'odd'"),
])
def test_invalid_class(tmp_path, monkeypatch, body, expected):
    fake_dist(tmp_path, "oddplugin", "odd = oddplugin_mod:P", {"oddplugin_mod": body})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(registry.RegistryError, match="^provider entry point 'odd' = 'oddplugin_mod:P' "
                                                     r"\(oddplugin 1\.0\): " + expected):
        registry.load_providers()["odd"]
    sys.modules.pop("oddplugin_mod", None)


def test_example_plugin_registers_through_its_entry_point(tmp_path, monkeypatch):
    """examples/plugin as if pip-installed: its own entry point, its module on sys.path."""
    entry = [line for line in (EXAMPLE / "pyproject.toml").read_text().splitlines()
             if line.startswith("haproxy = ")]
    assert entry == ['haproxy = "alicertd_haproxy:HaproxyProvider"']
    fake_dist(tmp_path, "alicertd_haproxy", entry[0].replace('"', ""))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    providers = registry.load_providers()
    assert providers["haproxy"].kind == "deploy"
    assert list(providers) == sorted(providers)
    sys.modules.pop("alicertd_haproxy", None)


def test_imports_only_the_providers_asked_for():
    """Start-up stays lean: listing names imports nothing, asking for one imports that one."""
    import subprocess
    code = ("import sys; from providers import registry; r = registry.load_providers(); "
            "names = list(r); r['cdn']; print(sorted(r.loaded()), 'providers.apigateway' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert out == ["['cdn']", "False"]
