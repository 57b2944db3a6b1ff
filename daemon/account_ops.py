"""``alicertd account ...``, ``alicertd acme directory`` and ``alicertd revoke``: the ACME
operations a user runs by hand. Each prints a short readable summary, or JSON with ``--json``."""

from __future__ import annotations

import json
import sys
from typing import Any

from daemon.acme.account import contact_for
from daemon.acme.problems import AccountDoesNotExist
from daemon.config import Config
from daemon.issuer import AccountKeeper
from daemon.keys import (
    certificate_der,
    certificate_info,
    generate_private_key,
    key_type_of,
    load_private_key,
    private_key_to_pem,
)
from daemon.state import StateStore
from daemon.tables import render_table


def _print(data: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    print(title)
    for key, value in data.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value) or "-"
        elif isinstance(value, dict):
            value = ", ".join(f"{k} ({v})" if v else k for k, v in value.items()) or "-"
        print(f"  {key:<22} {value if value not in (None, '') else '-'}")


def _account_doc(client, account, directory: str) -> dict[str, Any]:
    return {"url": account.url, "status": account.status, "contact": list(account.contact),
            "thumbprint": client.thumbprint, "key_type": key_type_of(client.account_key),
            "directory": directory, "orders": account.orders_url}


def run_account(config: Config, action: str, *, as_json: bool, confirmed: bool = False) -> int:
    store = StateStore(config.state_dir)
    keeper = AccountKeeper(config, store)
    if action == "show":
        key = keeper.load_key(create=False) if store.exists() else None
        if key is None:
            print(f"alicertd: no ACME account in {config.state_dir} yet; "
                  f"run 'alicertd account register' (or --run-now)", file=sys.stderr)
            return 1
        client = keeper.client(key, keeper.saved_url())
        if client.account_url is None:
            try:
                client.find_account()
            except AccountDoesNotExist:
                print(f"alicertd: the account key in {config.state_dir} has no account at "
                      f"{config.acme.directory}; run 'alicertd account register'", file=sys.stderr)
                return 1
        account = client.account_info()
        _print(_account_doc(client, account, config.acme.directory), as_json, "ACME account")
        return 0

    if action == "deactivate" and not confirmed:
        print("alicertd: account deactivate cannot be undone; add --yes to confirm", file=sys.stderr)
        return 2
    with store.lock(config.runtime.lock_timeout):
        key = keeper.load_key(create=True)
        client = keeper.client(key)
        keeper.ensure_account(client)
        if action == "register":
            account = client.account_info()
            wanted = list(contact_for(config.acme))
            if wanted and list(account.contact) != wanted:
                account = client.update_account(wanted)
                keeper.save(client, account.url, account.contact)
            _print(_account_doc(client, account, config.acme.directory), as_json, "ACME account registered")
            return 0
        if action == "rollover":
            new_key = generate_private_key(config.acme.account_key_type)
            old_thumbprint = client.thumbprint
            store.write_next_account_key(private_key_to_pem(new_key).encode("ascii"))
            account = client.key_change(new_key)
            store.promote_next_account_key()
            keeper.save(client, account.url, account.contact)
            doc = _account_doc(client, account, config.acme.directory)
            doc["previous_thumbprint"] = old_thumbprint
            _print(doc, as_json, "ACME account key rolled over")
            return 0
        account = client.deactivate_account()
        _print(_account_doc(client, account, config.acme.directory), as_json, "ACME account deactivated")
        return 0


def run_directory(config: Config, *, as_json: bool) -> int:
    keeper = AccountKeeper(config, StateStore(config.state_dir))
    client = keeper.client(generate_private_key("ec256"))  # a directory GET needs no account
    d = client.directory
    doc = {"url": d.url, "newNonce": d.new_nonce, "newAccount": d.new_account, "newOrder": d.new_order,
           "revokeCert": d.revoke_cert, "keyChange": d.key_change, "renewalInfo": d.renewal_info,
           "termsOfService": d.meta.terms_of_service, "website": d.meta.website,
           "caaIdentities": list(d.meta.caa_identities),
           "externalAccountRequired": d.meta.external_account_required,
           "profiles": dict(d.meta.profiles)}
    _print(doc, as_json, f"ACME directory {d.url}")
    return 0


def run_revoke(config: Config, name: str, reason: int) -> int:
    store = StateStore(config.state_dir)
    current = store.read_certificate(name) if store.exists() else None
    if current is None:
        print(f"alicertd: revoke: {name} has no current certificate in {config.state_dir}", file=sys.stderr)
        return 1
    keeper = AccountKeeper(config, store)
    der = certificate_der(current.fullchain_pem)
    with store.lock(config.runtime.lock_timeout):
        account_key = keeper.load_key(create=False)
        if account_key is None:
            # No account in this state dir: the certificate's own key signs the request (RFC
            # 8555 §7.6), so no throwaway account is registered at the CA for it.
            cert_key = load_private_key(current.key_pem)
            with keeper.client(cert_key) as client:
                revoked_now = client.revoke_certificate(der, reason, key=cert_key)
        else:
            client = keeper.client(account_key)
            keeper.ensure_account(client)
            revoked_now = client.revoke_certificate(der, reason)
        info = certificate_info(current.fullchain_pem)
        runtime = store.read_runtime(name)
        runtime.update(revoked_serial=info.serial, last_result="revoked",
                       last_error=f"serial {info.serial} was revoked; the next cycle issues a new one")
        store.write_runtime(name, runtime)
    result = "revoked" if revoked_now else "already revoked"
    sys.stdout.write(render_table(["certificate", "serial", "result"], [[name, info.serial, result]]))
    return 0
