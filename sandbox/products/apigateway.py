"""API Gateway (CloudAPI 2016-07-14): certificates of custom domains bound to API groups.

Groups are regional and the region is the request's ``RegionId``: a group asked for in the
wrong region is not found, so a client that forgets to iterate regions (or to set the endpoint
per region) is caught. SetDomainCertificate replaces the domain's certificate in place.

``DomainBindingStatus`` is ``BINDING`` for a domain bound to its group (normal) and ``BOUND``
for one that is not in effect (inactive): the names read backwards, but that is what the v2
model and the CustomDomain reference say. The real API documents no asynchronous state for a
certificate change, so the optional ``apigateway_rollout_seconds`` (default 0) only delays what
the TLS edge serves; the API reports the new certificate at once.

Error codes follow API Gateway's documented patterns ("Error codes for management and control
API operations": ``Missing%s``, ``Invalid%s``, ``NotFound%s``, all HTTP 400); which ``%s`` the real
service names in each case is not documented (docs/aliyun-api-notes.md).
"""

from __future__ import annotations

import uuid

from ..certs import CertError, validate_pair
from ..errors import ApiError
from ..state import ApiGroup, GwCert, GwDomain
from .base import Call, Product, epoch_ms, iso, optional, page_of, paging, required


def _invalid(name: str, detail: str) -> ApiError:
    """The documented ``Invalid%s`` (400) with its documented message, plus why."""
    return ApiError(400, f"Invalid{name}", f"The specified parameter {name} value is not valid. {detail}")


def _not_found(resource: str, param: str) -> ApiError:
    """The documented ``NotFound%s`` (400): "Cannot find resource according to your specified %s"."""
    return ApiError(400, f"NotFound{resource}", f"Cannot find resource according to your specified {param}.")


def _group(call: Call) -> ApiGroup:
    gid = required(call, "GroupId")
    group = call.world.groups.get((call.region, gid))
    if group is None:
        raise _not_found("ApiGroup", "GroupId")
    return group


def _gw_domain(call: Call, group: ApiGroup) -> GwDomain:
    name = required(call, "DomainName").lower().rstrip(".")
    d = group.domains.get(name)
    if d is None:
        raise _not_found("Domain", "DomainName")
    return d


def set_domain_certificate(call: Call) -> dict:
    group = _group(call)
    d = _gw_domain(call, group)
    # No length or character rule for CertificateName is documented: any non-empty name.
    name = required(call, "CertificateName")
    # The model marks body and key optional (they are also used to change only mTLS settings);
    # a certificate without them cannot be served, so the sandbox requires both.
    body = required(call, "CertificateBody")
    key = required(call, "CertificatePrivateKey")
    try:
        info = validate_pair(body, key)
    except CertError as exc:
        if exc.kind == "cert":
            raise _invalid("CertificateBody", f"The certificate does not parse: {exc}.") from None
        if exc.kind == "key":
            raise _invalid("CertificatePrivateKey", f"The private key does not parse: {exc}.") from None
        raise _invalid("CertificatePrivateKey", "It does not match the certificate.") from None
    if not info.covers(d.name):
        raise _invalid("CertificateBody", f"The certificate does not cover {d.name}.")
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
        out["CertificatePrivateKey"] = d.cert.key_pem  # DescribeDomainResponseBody has it too
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
    }


def describe_api_group(call: Call) -> dict:
    g = _group(call)
    out = _group_attrs(g)
    out.update({
        "Status": "NORMAL",
        "VpcDomain": "",
        "CustomDomains": {"DomainItem": [
            dict(_domain_fields(d), BindStageName="RELEASE", CustomDomainType="PUBLIC",
                 WildcardDomainPatterns="", IsHttpRedirectToHttps=False)
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
            # DescribeApiGroups' items carry Tags, DescribeApiGroup's body does not
            # (alibabacloud-cloudapi20160714 4.9.0 models)
            "ApiGroupAttributes": {"ApiGroupAttribute": [dict(_group_attrs(g), Tags={"TagInfo": []})
                                                         for g in page_of(groups, number, size)]}}


def delete_domain_certificate(call: Call) -> dict:
    group = _group(call)
    d = _gw_domain(call, group)
    cert_id = required(call, "CertificateId")
    if d.cert is None or d.cert.cert_id != cert_id:
        raise _not_found("Certificate", "CertificateId")
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
