"""Hold one sandbox exchange (request params + response body) to the official v2 models.

Requests: every parameter name must be one the official ``<Action>Request`` model knows
(``<Action>ShrinkRequest`` when the package has one: that is the form its client puts on the
wire, complex values as one JSON string), flattened the way the RPC style flattens them
(``Tag.1.Key``: list items numbered from 1, model fields joined by dots), or an RPC common
parameter; values of ``int``/``bool`` fields must read as such; fields whose docs say "This
parameter is required" must be present; documented "Valid values" must be respected.

Responses: the body must parse with ``<Action>ResponseBody``: every key a field the model knows,
JSON types as the model types them, documented enum values only, and ``from_map`` -> ``to_map``
must give the body back unchanged (nothing the body carries is lost).

Each check returns a list of problems (strings naming the action and the path); empty is good.
"""

from __future__ import annotations

import json
import re

from .models import Field, Kind, fields, model_class
from .registry import api_for

#: RPC common parameters (signature v1), sent by every SDK on every call.
RPC_COMMON = frozenset({
    "Action", "Version", "Format", "RegionId", "AccessKeyId", "Signature", "SignatureMethod",
    "SignatureVersion", "SignatureNonce", "SignatureType", "Timestamp", "SecurityToken",
})
_INT = re.compile(r"^-?\d+$")
REDACTED = "***"
_ANY_INDEX = re.compile(r"\[\d+\]")


def _unflatten(params: dict[str, str]) -> dict:
    tree: dict = {}
    for key, value in params.items():
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {} if child is None else {"": child}
            node = child
        if isinstance(node.get(parts[-1]), dict):
            node[parts[-1]][""] = value
        else:
            node[parts[-1]] = value
    return tree


def _enum_problem(where: str, f: Field, value) -> str | None:
    allowed = f.enum
    if allowed and isinstance(value, str) and value != REDACTED and value not in allowed:
        return f"{where}: {value!r} is not a documented value ({', '.join(allowed)})"
    return None


# --------------------------------------------------------------------------- requests


def _check_param_value(where: str, kind: Kind, value, out: list[str]) -> None:
    if kind.tag == "any" or kind.tag == "dict":
        return
    if kind.tag == "scalar":
        if isinstance(value, dict):
            out.append(f"{where}: the model has a plain value here, the request sends "
                       f"{', '.join(sorted(where + '.' + k for k in value))}")
        elif value != REDACTED and int in kind.py and bool not in kind.py and float not in kind.py \
                and not _INT.match(value):
            out.append(f"{where}: {value!r} is not an integer")
        elif value != REDACTED and bool in kind.py and value not in ("true", "false"):
            out.append(f"{where}: {value!r} is not a boolean")
        return
    if kind.tag == "list":
        if not isinstance(value, dict) or "" in value:
            out.append(f"{where}: the model has a list here (sent as {where}.1, {where}.2 ...)")
            return
        for index, item in value.items():
            if not _INT.match(index) or int(index) < 1:
                out.append(f"{where}.{index}: list items are numbered from 1")
                continue
            _check_param_value(f"{where}.{index}", kind.item, item, out)
        return
    # a nested model
    if not isinstance(value, dict) or "" in value:
        out.append(f"{where}: the model has an object here (sent as {where}.<Field>)")
        return
    _check_params_against(where + ".", kind.model, value, out, common=frozenset())


def _check_params_against(prefix: str, cls: type, tree: dict, out: list[str],
                          common: frozenset[str]) -> None:
    known = fields(cls)
    for name, value in tree.items():
        f = known.get(name)
        if f is None:
            if name in common:
                continue
            out.append(f"{prefix}{name}: not a parameter of {cls.__name__}")
            continue
        _check_param_value(prefix + name, f.kind, value, out)
        if f.kind.tag == "scalar" and (p := _enum_problem(prefix + name, f, value)):
            out.append(p)
    for name, f in known.items():
        if f.required and name not in tree:
            out.append(f"{prefix}{name}: required by {cls.__name__} but not sent")


def request_model(module: str, action: str) -> type | None:
    return model_class(module, f"{action}ShrinkRequest") or model_class(module, f"{action}Request")


def check_request(exchange: dict) -> list[str]:
    """Problems with the request of one exchange (see :func:`sandbox.calllog.capture_exchanges`)."""
    action = exchange["action"]
    api = api_for(exchange["product"], exchange["version"])
    if api is None:
        return [f"{exchange['product']} {exchange['version']}: no official model package registered "
                f"(tests/conformance/registry.py)"]
    cls = request_model(api.module, action)
    if cls is None:
        return [f"{action}: {api.module} has no {action}Request model (not an official action)"]
    out: list[str] = []
    _check_params_against("", cls, _unflatten(exchange["params"]), out, common=RPC_COMMON)
    return [f"{exchange['product']}.{action} request: {p}" for p in out]


# --------------------------------------------------------------------------- responses


def _type_name(value) -> str:
    return type(value).__name__


def _check_body_value(where: str, kind: Kind, value, out: list[str]) -> None:
    if kind.tag == "any":
        return
    if kind.tag == "dict":
        if not isinstance(value, dict):
            out.append(f"{where}: the model has a map here, the body has {_type_name(value)}")
        return
    if kind.tag == "scalar":
        ok = isinstance(value, kind.py) and not (isinstance(value, bool) and bool not in kind.py)
        if not ok:
            want = "/".join(t.__name__ for t in kind.py)
            out.append(f"{where}: the model types it {want}, the body has {_type_name(value)} {value!r}")
        return
    if kind.tag == "list":
        if not isinstance(value, list):
            out.append(f"{where}: the model has a list here, the body has {_type_name(value)}")
            return
        for i, item in enumerate(value):
            _check_body_value(f"{where}[{i}]", kind.item, item, out)
        return
    if not isinstance(value, dict):
        out.append(f"{where}: the model has an object ({kind.model.__name__}) here, "
                   f"the body has {_type_name(value)}")
        return
    _check_body_against(where + ".", kind.model, value, out)


def _check_body_against(prefix: str, cls: type, body: dict, out: list[str]) -> None:
    known = fields(cls)
    for name, value in body.items():
        f = known.get(name)
        if f is None:
            out.append(f"{prefix}{name}: not a field of {cls.__name__}")
            continue
        if value is None:
            out.append(f"{prefix}{name}: null (the models drop it: the field would be lost)")
            continue
        _check_body_value(prefix + name, f.kind, value, out)
        if f.kind.tag == "scalar" and (p := _enum_problem(prefix + name, f, value)):
            out.append(p)
        if f.kind.tag == "list" and f.kind.item.tag == "scalar" and isinstance(value, list):
            out.extend(p for v in value if (p := _enum_problem(prefix + name, f, v)))


def _differences(path: str, sent, back):
    """(path, how) for every place where the round-tripped body differs from the sent one."""
    if isinstance(sent, dict) and isinstance(back, dict):
        for k, v in sent.items():
            where = f"{path}.{k}" if path else k
            if k not in back:
                yield where, "loses it"
            else:
                yield from _differences(where, v, back[k])
        for k in back.keys() - sent.keys():
            if back[k] != []:  # to_map writes every list field, absent ones as []
                yield (f"{path}.{k}" if path else k), f"adds it ({back[k]!r})"
    elif isinstance(sent, list) and isinstance(back, list) and len(sent) == len(back):
        for i, (a, b) in enumerate(zip(sent, back, strict=True)):
            yield from _differences(f"{path}[{i}]", a, b)
    elif sent != back:
        yield path, f"gives {back!r} for {sent!r}"


def check_response(exchange: dict) -> list[str]:
    """Problems with the response body of one successful exchange."""
    action = exchange["action"]
    api = api_for(exchange["product"], exchange["version"])
    if api is None:
        return [f"{exchange['product']} {exchange['version']}: no official model package registered "
                f"(tests/conformance/registry.py)"]
    cls = model_class(api.module, f"{action}ResponseBody")
    if cls is None:
        return [f"{action}: {api.module} has no {action}ResponseBody model"]
    body = exchange["body"]
    if not isinstance(body, dict):
        return [f"{exchange['product']}.{action} response: not a JSON object"]
    out: list[str] = []
    _check_body_against("", cls, body, out)
    if not out:
        back = json.loads(json.dumps(cls().from_map(json.loads(json.dumps(body))).to_map()))
        out.extend(f"{path}: from_map/to_map {how}" for path, how in _differences("", body, back))
    return [f"{exchange['product']}.{action} response: {p}" for p in out]


def check_exchange(exchange: dict) -> list[str]:
    """Both checks for one exchange; error answers (status != 200) and injected faults are
    checked for their request only (their bodies are error bodies, not response models)."""
    problems = check_request(exchange)
    if exchange["status"] == 200 and exchange.get("fault") is None:
        problems += check_response(exchange)
    return problems


def check_all(exchanges: list[dict]) -> list[str]:
    """Every distinct problem over many exchanges, in first-seen order."""
    seen: dict[str, None] = {}
    for ex in exchanges:
        for p in check_exchange(ex):
            seen.setdefault(collapse_indexes(p), None)
    return list(seen)


def collapse_indexes(problem: str) -> str:
    """``Record[3].X`` -> ``Record[].X``: one line per problem, not one per list item."""
    return _ANY_INDEX.sub("[]", problem)
