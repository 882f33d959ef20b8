"""Server-side check of OSS request signatures, v1 (``OSS ak:sig``) and v4 (``OSS4-HMAC-SHA256``), computed the
way oss2's ``auth.py`` signs, so a wrong secret fails here exactly as it does against Alibaba Cloud."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

# Query parameters that v1 signs: oss2.auth.ProviderAuth._subresource_key_set of oss2 2.19.
V1_SUBRESOURCES = frozenset(
    {
        "accessPoint", "accessPointPolicy", "acl", "append", "asyncFetch", "bucketArchiveDirectRead", "bucketInfo",
        "callback", "callback-var", "cname", "comp", "continuation-token", "cors", "delete", "encryption",
        "endTime", "group", "httpsConfig", "inventory", "inventoryId", "lifecycle", "link", "live", "location",
        "logging", "metaQuery", "objectInfo", "objectMeta", "partNumber", "policy", "position", "publicAccessBlock",
        "qos", "qosInfo", "qosRequester", "redundancyTransition", "referer", "regionList", "replication",
        "replicationLocation", "replicationProgress", "requestPayment", "requesterQosInfo", "resourceGroup",
        "resourcePool", "resourcePoolBuckets", "resourcePoolInfo", "response-cache-control",
        "response-content-disposition", "response-content-encoding", "response-content-language",
        "response-content-type", "response-expires", "restore", "security-token", "sequential", "startTime", "stat",
        "status", "style", "styleName", "symlink", "tagging", "transferAcceleration", "uploadId", "uploads",
        "versionId", "versioning", "versions", "vod", "website", "worm", "wormExtend", "wormId",
        "x-oss-ac-forward-allow", "x-oss-ac-source-ip", "x-oss-ac-subnet-mask", "x-oss-ac-vpc-id",
        "x-oss-access-point-name", "x-oss-async-process", "x-oss-process", "x-oss-redundancy-transition-taskid",
        "x-oss-request-payer", "x-oss-target-redundancy-type", "x-oss-traffic-limit",
        "x-oss-write-get-object-response",
    }
)  # fmt: skip
_V4_DEFAULT_SIGNED = ("content-type", "content-md5")


@dataclass(frozen=True)
class AuthFailure:
    """Why a request was refused: the OSS error code, status and message to answer with."""

    status: int
    code: str
    message: str


def _v4_encode(text: str, keep_slash: bool) -> str:
    out = []
    for b in text.encode("utf-8"):
        c = chr(b)
        if (c.isascii() and (c.isalnum() or c in "_-~.")) or (keep_slash and c == "/"):
            out.append(c)
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def _query_item(key: str, value: str) -> str:
    return f"{key}={value}" if value else key


def check_signature(
    *,
    method: str,
    bucket: str,
    key: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    credentials: Mapping[str, str],
    region: str,
) -> AuthFailure | None:
    """None when the request is signed by a known key with its secret; else the failure to report.

    :param headers: request headers with lower-case names.
    :param query: decoded query parameters as sent.
    """
    authorization = headers.get("authorization", "")
    if authorization.startswith("OSS4-HMAC-SHA256 "):
        return _check_v4(method, bucket, key, query, headers, credentials, region, authorization)
    if authorization.startswith("OSS "):
        return _check_v1(method, bucket, key, query, headers, credentials, authorization)
    return AuthFailure(403, "AccessDenied", "You have no right to access this object: the request is not signed.")


def _unknown_key(access_key: str) -> AuthFailure:
    return AuthFailure(403, "InvalidAccessKeyId", f"The OSS Access Key Id you provided does not exist: {access_key}")


def _mismatch() -> AuthFailure:
    return AuthFailure(
        403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."
    )


def _check_v1(
    method: str,
    bucket: str,
    key: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    credentials: Mapping[str, str],
    authorization: str,
) -> AuthFailure | None:
    access_key, _, given = authorization[4:].partition(":")
    secret = credentials.get(access_key)
    if secret is None:
        return _unknown_key(access_key)
    oss_headers = sorted((k, v) for k, v in headers.items() if k.startswith("x-oss-"))
    sub = sorted((k, v) for k, v in query.items() if k in V1_SUBRESOURCES)
    resource = f"/{bucket}/{key}" if bucket else "/"
    if sub:
        resource += "?" + "&".join(_query_item(k, v) for k, v in sub)
    to_sign = "\n".join(
        [
            method,
            headers.get("content-md5", ""),
            headers.get("content-type", ""),
            headers.get("x-oss-date", "") or headers.get("date", ""),
            "".join(f"{k}:{v}\n" for k, v in oss_headers) + resource,
        ]
    )
    digest = hmac.new(secret.encode(), to_sign.encode("utf-8"), hashlib.sha1).digest()
    if not hmac.compare_digest(base64.b64encode(digest).decode(), given):
        return _mismatch()
    return None


def _check_v4(
    method: str,
    bucket: str,
    key: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    credentials: Mapping[str, str],
    region: str,
    authorization: str,
) -> AuthFailure | None:
    fields = dict(part.strip().partition("=")[::2] for part in authorization[len("OSS4-HMAC-SHA256 ") :].split(","))
    scope = fields.get("Credential", "").split("/")
    if len(scope) != 5 or scope[3] != "oss" or scope[4] != "aliyun_v4_request":
        return AuthFailure(400, "InvalidArgument", "Malformed Credential in the Authorization header.")
    access_key, date, signing_region = scope[0], scope[1], scope[2]
    secret = credentials.get(access_key)
    if secret is None:
        return _unknown_key(access_key)
    if signing_region != region:
        return AuthFailure(
            403, "SignatureDoesNotMatch", f"Invalid signing region {signing_region!r}: this endpoint is {region!r}."
        )
    additional = sorted(h for h in fields.get("AdditionalHeaders", "").split(";") if h)
    signed = sorted(
        (k, v) for k, v in headers.items() if k.startswith("x-oss-") or k in _V4_DEFAULT_SIGNED or k in additional
    )
    canonical_query = "&".join(
        _query_item(k, v) for k, v in sorted((_v4_encode(k, False), _v4_encode(v, False)) for k, v in query.items())
    )
    canonical = "\n".join(
        [
            method,
            _v4_encode(f"/{bucket}/{key}" if bucket else "/", True),
            canonical_query,
            "".join(f"{k}:{v}\n" for k, v in signed),
            ";".join(additional),
            headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
        ]
    )
    stamp = headers.get("x-oss-date", "")
    to_sign = "\n".join(
        [
            "OSS4-HMAC-SHA256",
            stamp,
            f"{date}/{signing_region}/oss/aliyun_v4_request",
            hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        ]
    )
    signing_key = ("aliyun_v4" + secret).encode()
    for part in (date, signing_region, "oss", "aliyun_v4_request"):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields.get("Signature", "")):
        return _mismatch()
    return None
