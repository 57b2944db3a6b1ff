"""``alicertd status``: what is managed, from the state dir alone (no network, no lock)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from daemon.config import Config
from daemon.cycle import rfc3339
from daemon.state import StateError, StateStore
from daemon.tables import render_table


def collect_status(config: Config, now: datetime | None = None) -> dict[str, Any]:
    """The contract's ``status --json`` document."""
    from daemon.keys import certificate_info
    now = now or datetime.now(UTC)
    store = StateStore(config.state_dir)
    certs = []
    for cert in config.certificates:
        entry: dict[str, Any] = {"name": cert.name, "domains": list(cert.domains), "serial": None,
                                 "issuer": None, "not_after": None, "days_left": None,
                                 "last_result": None, "last_error": None, "last_success": None,
                                 "next_attempt": None, "next_renewal": None, "next_renewal_reason": None,
                                 "ari_explanation_url": None, "targets": []}
        try:
            stored = store.read_certificate(cert.name) if store.exists() else None
            runtime = store.read_runtime(cert.name) if store.exists() else {}
            records = store.read_deploy(cert.name) if store.exists() else {}
        except StateError as exc:
            entry["cas"] = []
            entry["last_error"] = str(exc)
            certs.append(entry)
            continue
        if stored is not None:
            info = certificate_info(stored.fullchain_pem)
            entry.update(serial=info.serial, issuer=info.issuer, not_after=rfc3339(info.not_after),
                         days_left=int((info.not_after - now).total_seconds() // 86400),
                         issued_domains=list(info.sans))
        entry.update(last_result=runtime.get("last_result"), last_error=runtime.get("last_error"),
                     last_success=runtime.get("last_success"), next_attempt=runtime.get("next_attempt"))
        plan = runtime.get("next_renewal") or {}
        ari = runtime.get("ari") or {}
        # The renewal time the daemon wakes for, and the rule that chose it (see daemon.planner).
        entry.update(next_renewal=plan.get("at"), next_renewal_reason=plan.get("why"),
                     ari_explanation_url=ari.get("explanation_url") if ari.get("serial") == entry["serial"]
                     else None)
        from providers.registry import get_provider
        for deploy in cert.deploy:
            for target in get_provider(deploy.provider).expand(deploy.settings):
                rec = records.get(f"{target.provider}:{target.name}", {})
                entry["targets"].append({
                    "provider": target.provider, "target": target.name, "serial": rec.get("serial"),
                    "state": rec.get("state"), "verified_at": rec.get("verified_at"),
                    "deployed_at": rec.get("deployed_at"), "last_error": rec.get("last_error")})
        entry["cas"] = _cas_ids(store, cert.name, stored)
        certs.append(entry)
    return {"certificates": certs, "state_dir": str(config.state_dir), "generated_at": rfc3339(now),
            "reload_refused": _reload_refused(store)}


def _reload_refused(store: StateStore) -> dict[str, Any] | None:
    """The daemon's last reload, when it was refused (``at``, ``reasons``): the daemon then
    runs a configuration that is not this file's. None once a reload (or a start) succeeded."""
    try:
        record = store.read_reload_refused() if store.exists() else None
    except StateError as exc:
        return {"at": None, "reasons": [str(exc)]}
    if record is None:
        return None
    reasons = record.get("reasons")
    return {"at": record.get("at"), "reasons": [str(r) for r in reasons] if isinstance(reasons, list) else []}


def run_status(config: Config, *, as_json: bool) -> int:
    doc = collect_status(config)
    if as_json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    rows = [[c["name"], ", ".join(c["domains"]), c["serial"] or "-", c["issuer"] or "-",
             c["not_after"] or "-", "-" if c["days_left"] is None else str(c["days_left"]),
             _renewal_cell(c), c["last_result"] or "-", c["last_error"] or ""] for c in doc["certificates"]]
    sys.stdout.write(render_table(["certificate", "domains", "serial", "issuer", "not after", "days left",
                        "next renewal", "last result", "last error"], rows))
    for c in doc["certificates"]:
        if c.get("ari_explanation_url"):
            print(f"{c['name']}: the CA explains its renewal window at {c['ari_explanation_url']}")
    trows = [[c["name"], t["provider"], t["target"], t["serial"] or "-", t["state"] or "-",
              t["verified_at"] or "-", t["last_error"] or ""]
             for c in doc["certificates"] for t in c["targets"]]
    if trows:
        print()
        sys.stdout.write(render_table(["certificate", "provider", "target", "serving serial", "state",
                            "verified at", "last error"], trows))
    crows = [[c["name"], x["account"], str(x["cert_id"]), x["region"]]
             for c in doc["certificates"] for x in c.get("cas", [])]
    if crows:
        print()
        sys.stdout.write(render_table(["certificate", "account", "CAS id", "CAS region"], crows))
    refused = doc["reload_refused"]
    if refused:
        print(f"\nconfiguration reload refused at {refused['at'] or '?'}; "
              "the daemon kept its previous configuration:")
        for reason in refused["reasons"]:
            print(f"  {reason}")
    return 0


def _cas_ids(store: StateStore, name: str, stored) -> list[dict[str, Any]]:
    """The CAS certificates holding NAME's current chain, per account (``cas`` in --json)."""
    if stored is None or not store.exists():
        return []
    from daemon.keys import certificate_info
    fingerprint = certificate_info(stored.fullchain_pem).fingerprint
    try:
        records = store.cas.entries()
    except StateError:
        return []
    return [{"account": r.get("account"), "cert_id": r.get("cert_id"), "region": r.get("region")}
            for r in sorted(records, key=lambda r: (str(r.get("account")), str(r.get("region"))))
            if r.get("certificate") == name and r.get("fingerprint") == fingerprint]


def _renewal_cell(c: dict[str, Any]) -> str:
    if not c.get("next_renewal"):
        return "-"
    return f"{c['next_renewal']} ({c['next_renewal_reason']})" if c.get("next_renewal_reason") else c["next_renewal"]
