"""The ACME directory (RFC 8555 §7.1.1): the one URL a client is configured with.

Unknown fields are ignored (servers add their own); a missing required URL is a protocol
error naming the directory URL. Presets (``letsencrypt``...) are resolved by the config layer
(``daemon.config.DIRECTORY_PRESETS``) before anything here runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.acme.problems import AcmeConfigError, AcmeProtocolError, AcmeUnreachable
from daemon.acme.transport import Transport


@dataclass(frozen=True)
class DirectoryMeta:
    terms_of_service: str | None = None
    website: str | None = None
    caa_identities: tuple[str, ...] = ()
    external_account_required: bool = False
    profiles: Mapping[str, str] = field(default_factory=dict)  # name -> description


@dataclass(frozen=True)
class Directory:
    url: str
    new_nonce: str
    new_account: str
    new_order: str
    revoke_cert: str
    key_change: str | None = None
    new_authz: str | None = None
    renewal_info: str | None = None  # RFC 9773 ARI
    meta: DirectoryMeta = field(default_factory=DirectoryMeta)

    @classmethod
    def from_json(cls, url: str, data: Mapping[str, Any]) -> Directory:
        def required(name: str) -> str:
            value = data.get(name)
            if not isinstance(value, str) or not value:
                raise AcmeProtocolError(f"the directory has no {name!r} URL", url=url)
            return value

        def optional(name: str, source: Mapping[str, Any] = data) -> str | None:
            value = source.get(name)
            return value if isinstance(value, str) and value else None

        raw_meta = data.get("meta") if isinstance(data.get("meta"), Mapping) else {}
        caa = raw_meta.get("caaIdentities")
        profiles = raw_meta.get("profiles")
        meta = DirectoryMeta(
            terms_of_service=optional("termsOfService", raw_meta),
            website=optional("website", raw_meta),
            caa_identities=tuple(str(c) for c in caa) if isinstance(caa, list) else (),
            external_account_required=raw_meta.get("externalAccountRequired") is True,
            profiles={str(k): str(v) for k, v in profiles.items()} if isinstance(profiles, Mapping) else {},
        )
        return cls(
            url=url,
            new_nonce=required("newNonce"),
            new_account=required("newAccount"),
            new_order=required("newOrder"),
            revoke_cert=required("revokeCert"),
            key_change=optional("keyChange"),
            new_authz=optional("newAuthz"),
            renewal_info=optional("renewalInfo"),
            meta=meta,
        )

    def check_profile(self, profile: str | None) -> None:
        """Raise AcmeConfigError when ``profile`` is set but not offered by this CA."""
        if profile is None or profile in self.meta.profiles:
            return
        offered = ", ".join(sorted(self.meta.profiles)) or "none"
        raise AcmeConfigError(f"acme.profile = {profile!r} is not offered by {self.url} (offered: {offered})")


def fetch_directory(transport: Transport, url: str) -> Directory:
    """GET the directory. Any failure becomes one line naming the URL."""
    try:
        response = transport.get(url)
        return Directory.from_json(url, response.json())
    except AcmeUnreachable as exc:
        reason = exc.detail.removeprefix("cannot reach the ACME server: ")
        error = AcmeUnreachable(f"cannot fetch the ACME directory: {reason}", url=url)
        error.retryable = exc.retryable
        raise error from None
    except AcmeProtocolError as exc:
        raise AcmeProtocolError(f"not an ACME directory: {exc.detail}", url=url, status=exc.status,
                                method="GET") from None
