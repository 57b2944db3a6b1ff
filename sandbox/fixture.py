"""Fixtures: the starting world, from TOML or JSON (or a dict), checked before anything starts.

A fixture is validated as a whole and every problem is reported at once, by path
(``zone[1].record[0].type: ...``), because the person writing one fixes it in one go. The
schema is in sandbox/README.md; ``sandbox/fixtures/demo.toml`` is the reference example.
"""

from __future__ import annotations

import json
import time
import tomllib
import uuid
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from .metadata import MODES as METADATA_MODES
from .products import FIXTURE_LOADERS
from .state import AccessKey, ApiGroup, CdnDomain, GwDomain, RamRole, RecordData, Settings, World, Zone

RECORD_TYPES = {"A", "AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "CAA"}
SETTING_TYPES = {
    "account_id": str, "dns_delay": (int, float), "dns2_extra_delay": (int, float),
    "cdn_rollout_seconds": (int, float), "apigateway_rollout_seconds": (int, float),
    "cdn_busy_while_configuring": bool, "sts_ttl": (int, float), "nameservers": list,
    "metadata_mode": str,
}


class FixtureError(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("invalid fixture:\n  " + "\n  ".join(problems))
        self.problems = problems


def demo_fixture_path() -> Path:
    return Path(str(resources.files("sandbox") / "fixtures" / "demo.toml"))


def read_fixture(source: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    """The raw fixture mapping from a path (.toml/.json), a dict, or None (the demo)."""
    if source is None:
        source = demo_fixture_path()
    if isinstance(source, Mapping):
        return json.loads(json.dumps(dict(source)))  # deep copy, JSON-shaped
    path = Path(source)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return json.loads(text)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FixtureError([f"{path}: {exc}"]) from exc


def _list(raw: Mapping, key: str, problems: list[str]) -> list[Mapping]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        problems.append(f"{key}: must be a list of tables")
        return []
    return value


def _positive_int(item: dict, key: str, default: int, path: str, problems: list[str]) -> int:
    value = item.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        problems.append(f"{path}.{key}: must be a positive integer")
        return default
    return value


def _str(item: Mapping, key: str, path: str, problems: list[str], required: bool = True) -> str:
    value = item.get(key)
    if value is None:
        if required:
            problems.append(f"{path}.{key}: required")
        return ""
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{path}.{key}: must be a non-empty string")
        return ""
    return value.strip()


def _perms(item: Mapping, path: str, problems: list[str]) -> tuple[str, ...]:
    perms = item.get("permissions", ["*"])
    if not isinstance(perms, list) or not all(isinstance(p, str) and p for p in perms):
        problems.append(f"{path}.permissions: must be a list of RAM actions (e.g. \"alidns:*\")")
        return ()
    return tuple(perms)


def build_world(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> World:
    """A fresh World from a fixture mapping; ``overrides`` win over ``[settings]``."""
    problems: list[str] = []
    known = {"settings", "access_key", "ram_role", "zone", "cdn_domain", "apigateway_group",
             *FIXTURE_LOADERS}
    for key in raw:
        if key not in known:
            problems.append(f"{key}: unknown section (known: {', '.join(sorted(known))})")

    settings = Settings()
    raw_settings = dict(raw.get("settings", {}) or {})
    raw_settings.update({k: v for k, v in (overrides or {}).items() if v is not None})
    for key, value in raw_settings.items():
        typ = SETTING_TYPES.get(key)
        if typ is None:
            problems.append(f"settings.{key}: unknown setting")
        elif not isinstance(value, typ) or (typ is not bool and isinstance(value, bool)):
            problems.append(f"settings.{key}: wrong type")
        elif key == "metadata_mode":
            if value not in METADATA_MODES:
                problems.append(f"settings.metadata_mode: must be one of {', '.join(METADATA_MODES)}")
            else:
                settings.metadata_mode = value
        elif key == "nameservers":
            if not value or not all(isinstance(n, str) and n for n in value):
                problems.append("settings.nameservers: must be a non-empty list of host names")
            else:
                settings.nameservers = tuple(n.lower().rstrip(".") for n in value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            problems.append(f"settings.{key}: must not be negative")
        else:
            setattr(settings, key, float(value) if typ == (int, float) else value)

    world = World(settings)
    now = time.time()
    now_ms = int(now * 1000)

    for i, item in enumerate(_list(raw, "access_key", problems)):
        path = f"access_key[{i}]"
        ak = AccessKey(_str(item, "id", path, problems), _str(item, "secret", path, problems),
                       _perms(item, path, problems), str(item.get("name", "")))
        if ak.id.startswith("STS."):
            problems.append(f"{path}.id: must not start with STS. (reserved for STS keys)")
        if ak.id in world.access_keys:
            problems.append(f"{path}.id: duplicate access key {ak.id}")
        world.access_keys[ak.id] = ak

    for i, item in enumerate(_list(raw, "ram_role", problems)):
        path = f"ram_role[{i}]"
        ttl = item.get("ttl")
        if ttl is not None and (not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or ttl <= 0):
            problems.append(f"{path}.ttl: must be a positive number of seconds")
            ttl = None
        trust = item.get("trust", [])
        if not isinstance(trust, list) or not all(isinstance(t, str) and t.startswith("acs:ram::")
                                                  for t in trust):
            problems.append(f"{path}.trust: must be a list of RAM principals "
                            "(acs:ram::<uid>:root or acs:ram::<uid>:role/<name>)")
            trust = []
        role = RamRole(_str(item, "name", path, problems), _perms(item, path, problems),
                       float(ttl) if ttl is not None else None, tuple(trust))
        if role.name in world.roles:
            problems.append(f"{path}.name: duplicate role {role.name}")
        world.roles[role.name] = role

    for i, item in enumerate(_list(raw, "zone", problems)):
        path = f"zone[{i}]"
        name = _str(item, "name", path, problems).lower().rstrip(".")
        if not name:
            continue
        if name in world.zones:
            problems.append(f"{path}.name: duplicate zone {name}")
            continue
        min_ttl = _positive_int(item, "min_ttl", 600, path, problems)
        zone = Zone(name=name, domain_id=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                    created_ms=now_ms, min_ttl=min_ttl, remark=str(item.get("remark", "")))
        world.zones[name] = zone
        for j, rec in enumerate(_list(item, "record", problems)):
            rpath = f"{path}.record[{j}]"
            rr = _str(rec, "rr", rpath, problems).lower()
            rtype = _str(rec, "type", rpath, problems).upper()
            value = _str(rec, "value", rpath, problems)
            ttl = _positive_int(rec, "ttl", 600, rpath, problems)
            if rtype and rtype not in RECORD_TYPES:
                problems.append(f"{rpath}.type: {rtype} not one of {', '.join(sorted(RECORD_TYPES))}")
            prio = rec.get("priority")
            if rtype == "MX" and prio is None:
                prio = 10
            if rr and rtype and value:
                data = RecordData(record_id=world.new_record_id(), zone=name, rr=rr, type=rtype,
                                  value=value, ttl=ttl, line=str(rec.get("line", "default")),
                                  priority=prio, created_ms=now_ms, updated_ms=now_ms)
                zone.put(data, 0.0)  # valid since the beginning of time: no propagation delay
                world.record_zone[data.record_id] = name

    for i, item in enumerate(_list(raw, "cdn_domain", problems)):
        path = f"cdn_domain[{i}]"
        name = _str(item, "name", path, problems).lower().rstrip(".")
        if not name:
            continue
        if name.startswith("*."):
            name = name[1:]  # the CDN API names a wildcard domain ".example.com"
        if name in world.cdn:
            problems.append(f"{path}.name: duplicate CDN domain {name}")
        origins = item.get("sources", ["origin.example.net"])
        if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
            problems.append(f"{path}.sources: must be a list of origin host names")
            origins = []
        cname_base = "all" + name if name.startswith(".") else name
        world.cdn[name] = CdnDomain(
            name=name, cname=f"{cname_base}.w.kunlungr.com", created=now, modified=now,
            cdn_type=str(item.get("cdn_type", "web")), description=str(item.get("description", "")),
            sources=[{"Content": o, "Type": "domain", "Port": 80, "Priority": "20", "Weight": "10"}
                     for o in origins],
        )

    for i, item in enumerate(_list(raw, "apigateway_group", problems)):
        path = f"apigateway_group[{i}]"
        gid = _str(item, "id", path, problems)
        region = _str(item, "region", path, problems)
        gname = str(item.get("name", gid))
        domains = item.get("domains", [])
        if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
            problems.append(f"{path}.domains: must be a list of domain names")
            domains = []
        if (region, gid) in world.groups:
            problems.append(f"{path}: duplicate group {gid} in {region}")
        if any(g.group_id == gid for g in world.groups.values()):
            problems.append(f"{path}.id: group ids are globally unique ({gid} used twice)")
        group = ApiGroup(group_id=gid, region=region, name=gname, created=now, modified=now,
                         description=str(item.get("description", "")))
        for d in domains:
            d = d.lower().rstrip(".")
            group.domains[d] = GwDomain(name=d, created=now)
        world.groups[(region, gid)] = group

    for section, loader in FIXTURE_LOADERS.items():  # sections the product modules own
        loader(world, _list(raw, section, problems), problems, now)

    if problems:
        raise FixtureError(problems)
    return world
