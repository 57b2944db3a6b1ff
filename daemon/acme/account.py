"""Account helpers the CLI and the daemon call: values in, values out, no storage here.

``ensure_account`` makes sure the configured account key has a valid account at the CA
without ever creating a second account for a key the CA already knows: a saved URL is checked
first, a lost URL is recovered with ``onlyReturnExisting`` (RFC 8555 §7.3.1), and only a key the
CA has never seen is registered (with EAB when configured or required, §7.3.4).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from daemon.acme.client import Account, AcmeClient, ExternalAccountBinding
from daemon.acme.problems import AccountDoesNotExist, AcmeConfigError, AcmeError, Unauthorized
from daemon.config import AcmeConfig
from daemon.keys import PrivateKey

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnsuredAccount:
    account: Account
    created: bool  # a new account was registered (the caller should save account.url)
    recovered: bool = False  # the URL was found again with onlyReturnExisting

    @property
    def url(self) -> str:
        return self.account.url


def client_for(config: AcmeConfig, account_key: PrivateKey, account_url: str | None = None,
               **kwargs) -> AcmeClient:
    """An AcmeClient for the configured directory, CA bundle and timeout."""
    return AcmeClient(config.directory, account_key, account_url=account_url,
                      ca_bundle=str(config.ca_bundle) if config.ca_bundle else None,
                      timeout=config.timeout, **kwargs)


def contact_for(config: AcmeConfig) -> tuple[str, ...]:
    return (f"mailto:{config.email}",) if config.email else ()


def eab_for(config: AcmeConfig, required: bool) -> ExternalAccountBinding | None:
    """The EAB credentials of the config; AcmeConfigError when the CA requires them and the
    config has none (or only half)."""
    if config.eab_kid and config.eab_hmac_key:
        return ExternalAccountBinding(config.eab_kid, config.eab_hmac_key)
    if config.eab_kid or config.eab_hmac_key:
        missing = "acme.eab_hmac_key" if config.eab_kid else "acme.eab_kid"
        raise AcmeConfigError(f"{missing} is missing: external account binding needs both acme.eab_kid "
                              f"and acme.eab_hmac_key")
    if required:
        raise AcmeConfigError(f"the CA at {config.directory} requires external account binding: set "
                              f"acme.eab_kid and acme.eab_hmac_key (from the CA's account page)")
    return None


def ensure_account(client: AcmeClient, config: AcmeConfig, saved_url: str | None = None,
                   *, on_tos: Callable[[str], None] | None = None) -> EnsuredAccount:
    """Return a valid account for ``client.account_key``.

    1. ``saved_url`` given and valid at the CA: use it.
    2. Otherwise ask the CA for the key's account (onlyReturnExisting): recovered, nothing made.
    3. Otherwise register, agreeing to the CA's terms (``on_tos`` is told their URL), with
       the configured contact and EAB.
    A deactivated or revoked account raises AcmeError: the key can never be used again there.
    """
    if saved_url:
        client.account_url = saved_url
        try:
            account = client.account_info()
        except (AccountDoesNotExist, Unauthorized) as exc:
            log.warning("the saved account %s is unknown to the CA (%s); looking the key up", saved_url, exc)
            client.account_url = None
        else:
            _require_valid(account)
            return EnsuredAccount(account, created=False)

    try:
        account = client.find_account()
    except AccountDoesNotExist:
        pass
    else:
        _require_valid(account)
        return EnsuredAccount(account, created=False, recovered=True)

    meta = client.directory.meta
    eab = eab_for(config, meta.external_account_required)
    if meta.terms_of_service and on_tos:
        on_tos(meta.terms_of_service)
    account = client.new_account(contact_for(config), tos_agreed=True, eab=eab)
    log.info("registered ACME account %s", account.url)
    return EnsuredAccount(account, created=account.created)


def _require_valid(account: Account) -> None:
    if account.status != "valid":
        raise AcmeError(f"the ACME account {account.url} is {account.status}; register a new account with "
                        f"a new key (alicertd account register)", url=account.url)
