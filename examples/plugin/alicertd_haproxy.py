"""HAProxy wants the chain and the key in one file. Config::

    [[certificate.deploy]]
    provider = "haproxy"
    path = "/etc/haproxy/certs/www.pem"
"""

from dataclasses import dataclass
from pathlib import Path

from providers.base import Binding, Target, VerificationError
from providers.certnames import leaf_of_pem
from providers.local import write_atomic
from providers.settings import Section


@dataclass(frozen=True)
class Settings:
    path: Path


class HaproxyProvider:
    kind = "deploy"
    name = "haproxy"

    def __init__(self, ctx):
        self.ctx = ctx

    @classmethod
    def parse_config(cls, raw, path, errors, defaults):
        before = len(errors)
        s = Section(raw, path, errors)
        file = s.str("path", required=True)
        s.finish()
        if file is not None and not Path(file).is_absolute():
            s.error("path", "must be an absolute path")
        return None if len(errors) > before else Settings(Path(file))

    @classmethod
    def expand(cls, settings):
        return [Target(cls.name, str(settings.path), settings)]

    def read_bindings(self, targets):
        result = {}
        for t in targets:
            try:
                leaf = leaf_of_pem(t.settings.path.read_bytes())
                result[t] = Binding("ok", serial=leaf.serial, fingerprint=leaf.fingerprint)
            except FileNotFoundError:
                result[t] = Binding("none")
            except (OSError, ValueError) as exc:
                result[t] = Binding("error", detail=str(exc))
        return result

    def bind(self, target, bundle):
        target.settings.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target.settings.path, bundle.fullchain_pem + bundle.key_pem)

    def verify(self, target, bundle, deadline):
        binding = self.read_bindings([target])[target]
        if not binding.serves(bundle):
            raise VerificationError(f"haproxy: {target.name} does not hold serial {bundle.serial}")
        return binding
