"""config/ram-policy.json grants exactly the API actions the code calls (least privilege)."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "config" / "ram-policy.json"
# SDK package -> RAM action prefix
PACKAGES = {"aliyunsdkalidns": "alidns", "aliyunsdkcdn": "cdn", "aliyunsdkcloudapi": "apigateway",
            "aliyunsdkdcdn": "dcdn", "aliyunsdkesa": "esa"}
_IMPORT = re.compile(r"from\s+(aliyunsdk\w+)\.request\.v\d+\.(\w+)Request\s+import")
_COMMON = re.compile(r"CommonRequest\([^)]*action_name\s*=\s*[\"'](\w+)")
# providers/cas.py builds CommonRequests through _request("<Action>", ...); RAM code yundun-cert
_CAS = re.compile(r"_request\(\s*\"(\w+)\"")
# request classes a provider defines itself for actions the legacy SDK package lacks (esa.py):
# RpcRequest.__init__(self, "<Product>", "<version>", "<Action>"); RAM prefix = product, lower
_RPC = re.compile(r"RpcRequest\.__init__\(self,\s*\"(\w+)\",\s*\"[\d-]+\",\s*\"(\w+)\"")
# the load balancer providers call self._call("<Action>", ...) (providers/loadbalancers.rpc)
_LB_CALL = re.compile(r"self\._call\(\s*\"(\w+)\"")
_LB_PREFIX = {"alb.py": "alb", "nlb.py": "nlb", "clb.py": "slb"}


def _ram_actions_literal(text: str) -> set[str]:
    """A provider that calls no SDK request class (oss.py: REST through its own SDK) lists its
    RAM actions in a module-level ``RAM_ACTIONS = (...)`` tuple."""
    import ast
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "RAM_ACTIONS" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


def used_actions() -> set[str]:
    """Every SDK request class imported by product code (each is used for an api.call)."""
    found: set[str] = set()
    for path in (ROOT / "providers").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for package, action in _IMPORT.findall(text):
            assert package in PACKAGES, f"{path}: unknown SDK package {package}"
            found.add(f"{PACKAGES[package]}:{action}")
        if path.name == "credentials.py":  # STS AssumeRole for [aliyun.accounts.*] ram_role_arn
            found.update(f"sts:{action}" for action in _COMMON.findall(text))
        else:
            assert not _COMMON.search(text), f"{path}: CommonRequest: add its action to this test"
        found.update(f"{product.lower()}:{action}" for product, action in _RPC.findall(text))
        found.update(_ram_actions_literal(text))
        if path.name in _LB_PREFIX:
            found.update(f"{_LB_PREFIX[path.name]}:{action}" for action in _LB_CALL.findall(text))
        if path.name == "cas.py":
            found.update(f"yundun-cert:{action}" for action in _CAS.findall(text))
    return found


def policy_actions() -> set[str]:
    policy = json.loads(POLICY.read_text(encoding="utf-8"))
    assert policy["Version"] == "1"
    actions: set[str] = set()
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow"
        assert st.get("Resource") == "*"
        assert "*" not in "".join(st["Action"]), "no wildcards in a least-privilege policy"
        actions.update(st["Action"])
    return actions


def test_policy_is_valid_and_matches_the_code():
    used = used_actions()
    granted = policy_actions()
    assert {"alidns:AddDomainRecord", "alidns:DeleteDomainRecord", "alidns:DescribeDomains"} <= used
    assert used - granted == set(), "actions called but not granted"
    assert granted - used == set(), "actions granted but never called"
