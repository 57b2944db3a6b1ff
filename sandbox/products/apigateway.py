"""API Gateway (CloudAPI 2016-07-14): certificates of custom domains bound to API groups.

Groups are regional and the region is the request's ``RegionId``: a group asked for in the
wrong region is ``NotFoundApiGroup`` (404), as the real service answers, so a client that
forgets to iterate regions (or to set the endpoint per region) is caught. SetDomainCertificate
replaces the domain's certificate in place; DomainBindingStatus is ``BINDING`` only during the
optional ``apigateway_rollout_seconds`` (default 0: the real API documents no async state).
"""

from __future__ import annotations

import re
import uuid

from ..certs import CertError, validate_pair
from ..errors import ApiError
from ..state import ApiGroup, GwCert, GwDomain
from .base import Call, Product, epoch_ms, iso, optional, page_of, paging, required

# 4-50 characters starting with a letter; the rest kept conservative (letters, digits, _ and -).
_CERT_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{3,49}$")


def _group(call: Call) -> ApiGroup:
    gid = required(call, "GroupId")
    group = call.world.groups.get((call.region, gid))
    if group is None:
        raise ApiError(404, "NotFoundApiGroup", f"Cannot find the API group {gid} in region {call.region}.")
    return group


def _gw_domain(call: Call, group: ApiGroup) -> GwDomain:
    name = required(call, "DomainName").lower().rstrip(".")
    d = group.domains.get(name)
    if d is None:
        raise ApiError(404, "NotFoundDomain",
                       f"The domain {name} is not bound to the API group {group.group_id}.")
    return d


def set_domain_certificate(call: Call) -> dict:
    group = _group(call)
    d = _gw_domain(call, group)
    name = required(call, "CertificateName")
    if not _CERT_NAME_RE.match(name):
        raise ApiError(400, "InvalidCertificateName",
                       "The CertificateName must be 4 to 50 characters, start with a letter, and "
                       "contain only letters, digits, '_' and '-'.")
    body = optional(call, "CertificateBody")
    key = optional(call, "CertificatePrivateKey")
    if body is None:
        raise ApiError(400, "MissingCertificateBody", "CertificateBody is mandatory for this action.")
    if key is None:
        raise ApiError(400, "MissingCertificatePrivateKey",
                       "CertificatePrivateKey is mandatory for this action.")
    try:
        info = validate_pair(body, key)
    except CertError as exc:
        if exc.kind == "cert":
            raise ApiError(400, "InvalidCertificateBody", f"The certificate is invalid: {exc}.") from None
        if exc.kind == "key":
            raise ApiError(400, "InvalidCertificatePrivateKey", f"The private key is invalid: {exc}.") from None
        raise ApiError(400, "CertificateKeyNotMatch",
                       "The certificate and the private key do not match.") from None
    if not info.covers(d.name):
        raise ApiError(400, "CertificateDomainNotMatch",
                       f"The certificate does not match the domain name {d.name}.")
    cert = GwCert(cert_id=uuid.uuid4().hex, name=name, chain_pem=body, key_pem=key, info=info,
                  updated=call.now)
    d.set_cert(cert, call.now, call.world.settings.apigateway_rollout_seconds)
    group.modified = call.now
    return {}


def _domain_fields(d: GwDomain) -> dict:
    fields = {
        "DomainName": d.name,
        "DomainBindingStatus": d.binding_status(),
        "DomainCNAMEStatus": "RESOLVED",
        "DomainLegalStatus": "NORMAL",
        "DomainWebSocketStatus": "CLOSE",
        "DomainRemark": d.remark,
    }
    if d.cert is not None:
        fields.update({
            "CertificateId": d.cert.cert_id,
            "CertificateName": d.cert.name,
            "CertificateValidStart": epoch_ms(d.cert.info.not_before),
            "CertificateValidEnd": epoch_ms(d.cert.info.not_after),
        })
    return fields


def describe_domain(call: Call) -> dict:
    group = _group(call)
    d = _gw_domain(call, group)
    out = {"GroupId": group.group_id, "SubDomain": group.subdomain}
    out.update(_domain_fields(d))
    if d.cert is not None:
        out["CertificateBody"] = d.cert.chain_pem
        out["CertificatePrivateKey"] = d.cert.key_pem  # the real API returns it too
    return out


def _group_attrs(g: ApiGroup) -> dict:
    return {
        "GroupId": g.group_id,
        "GroupName": g.name,
        "SubDomain": g.subdomain,
        "Description": g.description,
        "CreatedTime": iso(g.created),
        "ModifiedTime": iso(g.modified),
        "RegionId": g.region,
        "InstanceId": g.instance_id,
        "InstanceType": "VPC_SHARED_V2",
        "BasePath": "/",
        "HttpsPolicy": "HTTPS2_TLS1_0",
        "BillingStatus": "NORMAL",
        "IllegalStatus": "NORMAL",
        "TrafficLimit": 500,
        "Tags": {"TagInfo": []},
    }


def describe_api_group(call: Call) -> dict:
    g = _group(call)
    out = _group_attrs(g)
    out.update({
        "Status": "NORMAL",
        "VpcDomain": "",
        "CustomDomains": {"DomainItem": [
            dict(_domain_fields(d), BindStageName="RELEASE", CustomDomainType="PUBLIC",
                 WildcardDomainPatterns="", IsHttpRedirectToHttps=False, WssEnable="OFF")
            for d in sorted(g.domains.values(), key=lambda x: x.name)]},
        "StageItems": {"StageInfo": [
            {"StageId": f"{g.group_id}-{s.lower()}", "StageName": s, "Description": ""}
            for s in ("RELEASE", "PRE", "TEST")]},
    })
    return out


def describe_api_groups(call: Call) -> dict:
    number, size = paging(call, 10, 50)
    gid = optional(call, "GroupId")
    name = (optional(call, "GroupName") or "").lower()
    groups = sorted((g for g in call.world.groups.values() if g.region == call.region),
                    key=lambda g: g.group_id)
    groups = [g for g in groups if (gid is None or g.group_id == gid) and name in g.name.lower()]
    return {"TotalCount": len(groups), "PageNumber": number, "PageSize": size,
            "ApiGroupAttributes": {"ApiGroupAttribute": [_group_attrs(g) for g in page_of(groups, number, size)]}}


def delete_domain_certificate(call: Call) -> dict:
    group = _group(call)
    d = _gw_domain(call, group)
    cert_id = required(call, "CertificateId")
    if d.cert is None or d.cert.cert_id != cert_id:
        raise ApiError(404, "NotFoundCertificate", f"The certificate {cert_id} does not exist on {d.name}.")
    d.set_cert(None, call.now, call.world.settings.apigateway_rollout_seconds)
    group.modified = call.now
    return {}


PRODUCT = Product(
    name="CloudAPI",
    version="2016-07-14",
    ram_prefix="apigateway",
    host_pattern="apigateway.{region}.aliyuncs.com",
    actions={
        "SetDomainCertificate": set_domain_certificate,
        "DescribeDomain": describe_domain,
        "DescribeApiGroup": describe_api_group,
        "DescribeApiGroups": describe_api_groups,
        "DeleteDomainCertificate": delete_domain_certificate,
    },
)
