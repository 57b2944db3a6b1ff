"""Several accounts in the config (issue #16): what a valid file parses into."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from daemon.config_load import ConfigError, parse_config

BASE = """
state_dir = "/tmp/alicertd-accounts-test"
[acme]
directory = "https://127.0.0.1:14000/dir"
[aliyun]
ram_role = "alicertd-role"
region = "cn-shanghai"
cas_region = "ap-southeast-1"
[aliyun.endpoints]
sts = "http://127.0.0.1:18080"
[aliyun.accounts.media]
ram_role_arn = "acs:ram::1234567890123456:role/alicertd-deploy"
source_account = "default"
role_session_name = "alicertd@host-1"
[aliyun.accounts.brand]
access_key_id = "LTAIbrand"
access_key_secret = "brand-secret"
region = "cn-beijing"
cas_region = "cn-hangzhou"
[aliyun.accounts.self]
access_key_id = "LTAIself"
access_key_secret = "self-secret"
ram_role_arn = "acs:ram::1234567890123457:role/deploy.v2"
[dns]
accounts = ["default", "brand"]
[[certificate]]
name = "www"
domains = ["example.com"]
"""


def _parse(text: str):
    return parse_config(tomllib.loads(text), Path("/tmp/c.toml"), env={})


def test_accounts_parse_with_shared_keys_and_inherited_regions():
    cfg = _parse(BASE)
    a = cfg.aliyun
    assert a.account_names == ("default", "media", "brand", "self")
    assert a.account("default") is a and a.name == "default"
    media = a.account("media")
    assert (media.ram_role_arn, media.source_account, media.role_session_name) == (
        "acs:ram::1234567890123456:role/alicertd-deploy", "default", "alicertd@host-1")
    assert (media.region, media.cas_region) == ("cn-shanghai", "ap-southeast-1")  # from [aliyun]
    assert media.endpoints == {"sts": "http://127.0.0.1:18080"} and media.accounts == {}
    brand = a.account("brand")
    assert (brand.region, brand.cas_region, brand.access_key_id) == ("cn-beijing", "cn-hangzhou",
                                                                     "LTAIbrand")
    assert a.account("self").source_account is None  # assumes the role with its own key
    assert cfg.dns.accounts == ("default", "brand")
    assert "brand-secret" not in repr(cfg)
    with pytest.raises(KeyError):
        a.account("nosuch")


def test_defaults_without_accounts():
    cfg = _parse(BASE.split("[aliyun.accounts.media]")[0] + '[[certificate]]\nname = "www"\n'
                 'domains = ["example.com"]\n')
    assert cfg.aliyun.account_names == ("default",) and cfg.dns.accounts == ("default",)


@pytest.mark.parametrize("edit,key", [
    (('role_session_name = "alicertd@host-1"', 'role_session_name = "x"'),
     "aliyun.accounts.media.role_session_name"),
    (('accounts = ["default", "brand"]', 'accounts = ["brand", "brand"]'), "dns.accounts[1]"),
    (('accounts = ["default", "brand"]', 'accounts = []'), "dns.accounts"),
    (('[aliyun.accounts.brand]', '[aliyun.accounts."bad name"]'), 'aliyun.accounts.bad name'),
    (('source_account = "default"', 'source_account = "media"'),
     "aliyun.accounts.media.source_account"),
])
def test_bad_account_entries_name_the_key(edit, key):
    with pytest.raises(ConfigError) as info:
        _parse(BASE.replace(*edit))
    assert any(key in line for line in info.value.lines()), info.value.lines()
