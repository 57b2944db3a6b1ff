"""The account verbs of RFC 8555 §7.3: register, find, read, update, roll the key over, deactivate.

Apart from the order verbs because they change what signs every later request (the ``kid``, or
the key itself after a rollover) and some are irreversible; ``account.py`` builds the "ensure
an account exists for this key" policy on top of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from daemon.acme import jws
from daemon.acme.problems import AcmeError, AcmeProtocolError
from daemon.acme.resources import Account, ExternalAccountBinding, parse_account
from daemon.acme.session import AcmeSession
from daemon.keys import PrivateKey

log = logging.getLogger("daemon.acme.client")  # the logger these messages always had


class AccountManagement(AcmeSession):
    """§7.3 verbs; mixed into ``AcmeClient``."""

    def new_account(self, contact: Iterable[str] = (), tos_agreed: bool = False,
                    eab: ExternalAccountBinding | None = None) -> Account:
        """newAccount (§7.3). Returns the existing account (``created`` False) when the key is
        already registered."""
        url = self.directory.new_account
        payload: dict[str, Any] = {"contact": list(contact), "termsOfServiceAgreed": bool(tos_agreed)}
        if eab is not None:
            payload["externalAccountBinding"] = jws.eab_binding(
                jws.jwk(self.account_key), kid=eab.kid, hmac_key=eab.hmac_key, url=url)
        response = self._post(url, payload, use_kid=False)
        self.account_url = response.require_location()
        return parse_account(self.account_url, response, created=response.status == 201)

    def find_account(self) -> Account:
        """newAccount with ``onlyReturnExisting`` (§7.3.1): the account of this key, or
        AccountDoesNotExist. Never creates one."""
        response = self._post(self.directory.new_account, {"onlyReturnExisting": True}, use_kid=False)
        self.account_url = response.require_location()
        return parse_account(self.account_url, response)

    def account_info(self) -> Account:
        """POST-as-GET the account URL."""
        url = self._kid()
        return parse_account(url, self._post(url, None))

    def update_account(self, contact: Iterable[str]) -> Account:
        """Replace the contact list (§7.3.2)."""
        url = self._kid()
        return parse_account(url, self._post(url, {"contact": list(contact)}))

    def key_change(self, new_key: PrivateKey) -> Account:
        """Roll the account over to ``new_key`` (§7.3.5). Returns once the CA accepted; from
        then on this client signs with ``new_key`` and the caller must persist it.

        Nothing after the acceptance may raise (the caller would not know which key is
        current): the account is then read back best effort, and when that read fails the
        Account is what the keyChange response said (often nothing: contact unknown)."""
        url = self.directory.key_change
        if not url:
            raise AcmeProtocolError("the CA offers no keyChange", url=self.directory_url)
        account_url = self._kid()
        inner = jws.sign(new_key, {"account": account_url, "oldKey": jws.jwk(self.account_key)},
                         url=url, nonce=None, kid=None)
        response = self._post(url, inner, retry=False)
        self.account_key = new_key
        try:
            return self.account_info()
        except AcmeError as exc:
            log.warning("account key rolled over, but reading the account back failed: %s", exc)
            return parse_account(account_url, response)

    def deactivate_account(self) -> Account:
        """§7.3.6. Irreversible: the key can never be used for an account at this CA again."""
        url = self._kid()
        return parse_account(url, self._post(url, {"status": "deactivated"}))
