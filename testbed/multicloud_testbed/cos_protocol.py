"""The wire format of the local COS server: request signatures (``q-sign-algorithm=sha1``), XML bodies, ranges.

The string to sign is rebuilt exactly as cos-python-sdk-v5 (``qcloud_cos/cos_auth.py``) formats it: lower-case
method, the decoded key path, the signed query parameters and headers, each name lower-cased and each name and
value percent-encoded with ``-_.~`` safe, sorted and joined with ``&``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

from multicloud_testbed.disk import StoredObject, Upload

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
OWNER = [("ID", "qcs::cam::uin/100000000001:uin/100000000001"), ("DisplayName", "100000000001")]


class SignatureError(Exception):
    """The request's signature does not verify; ``code`` is the COS error code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _enc(value: str) -> str:
    return quote(value.encode("utf-8"), "-_.~")


def parse_authorization(value: str) -> dict[str, str]:
    """``q-sign-algorithm=sha1&q-ak=...&q-signature=...`` into a dict (values are never percent-encoded)."""
    fields: dict[str, str] = {}
    for item in value.split("&"):
        name, _, val = item.partition("=")
        fields[name.strip()] = val.strip()
    return fields


def string_to_sign(
    method: str, path: str, params: Iterable[tuple[str, str]], headers: Message, auth: Mapping[str, str]
) -> str:
    """The ``sha1\\n<sign-time>\\n<sha1 of the formatted request>\\n`` string the SDK signs."""
    header_names = [n for n in auth.get("q-header-list", "").split(";") if n]
    param_names = [n for n in auth.get("q-url-param-list", "").split(";") if n]
    given = {_enc(k).lower(): _enc(v) for k, v in params}
    signed_params = []
    for name in sorted(param_names):
        if name not in given:
            raise SignatureError("SignatureDoesNotMatch", f"signed parameter {name!r} is not in the request")
        signed_params.append(f"{name}={given[name]}")
    lowered = {_enc(k).lower(): v for k, v in headers.items()}
    signed_headers = []
    for name in sorted(header_names):
        if name not in lowered:
            raise SignatureError("SignatureDoesNotMatch", f"signed header {name!r} is not in the request")
        signed_headers.append(f"{name}={_enc(lowered[name])}")
    formatted = f"{method.lower()}\n{path}\n{'&'.join(signed_params)}\n{'&'.join(signed_headers)}\n"
    digest = hashlib.sha1(formatted.encode("utf-8")).hexdigest()
    return f"sha1\n{auth.get('q-sign-time', '')}\n{digest}\n"


def verify_request(
    method: str, path: str, raw_query: str, headers: Message, credentials: Mapping[str, str], now: float | None = None
) -> str:
    """Check a request's COS signature (header or query-string form); return the access key id.

    Raises SignatureError: AccessDenied when there is no signature or it has expired, SignatureDoesNotMatch when
    the key is unknown or the signature differs (as the brief of this server asks, an unknown key does not get
    its own code, so a client cannot probe which key ids exist).
    """
    query = parse_qsl(raw_query, keep_blank_values=True)
    value = headers.get("Authorization", "")
    if value:
        auth = parse_authorization(value)
        params = query
    else:
        auth = {k: v for k, v in query if k.startswith("q-")}
        params = [(k, v) for k, v in query if not k.startswith("q-") and k != "x-cos-security-token"]
    if auth.get("q-sign-algorithm") != "sha1" or "q-signature" not in auth:
        raise SignatureError("AccessDenied", "the request carries no COS signature")
    start, _, end = auth.get("q-sign-time", "").partition(";")
    current = time.time() if now is None else now
    if not (start.isdigit() and end.isdigit() and int(start) <= current <= int(end)):
        raise SignatureError("AccessDenied", "the request signature has expired or is not yet valid")
    secret = credentials.get(auth.get("q-ak", ""))
    if secret is None:
        raise SignatureError("SignatureDoesNotMatch", "the signature does not match: unknown SecretId")
    to_sign = string_to_sign(method, path, params, headers, auth)
    key_time = auth.get("q-key-time") or auth.get("q-sign-time", "")
    sign_key = hmac.new(secret.encode(), key_time.encode(), hashlib.sha1).hexdigest()
    expected = hmac.new(sign_key.encode(), to_sign.encode(), hashlib.sha1).hexdigest()
    if not hmac.compare_digest(expected, auth["q-signature"]):
        raise SignatureError("SignatureDoesNotMatch", "the signature does not match: check the SecretKey")
    return auth["q-ak"]


# ---- XML -------------------------------------------------------------------------------------------
def xml_element(name: str, value: object) -> str:
    """``value`` is text, a number, or a list of (child name, child value) pairs."""
    inner = "".join(xml_element(k, v) for k, v in value) if isinstance(value, list) else escape(str(value))
    return f"<{name}>{inner}</{name}>"


def xml_document(root: str, children: list[tuple[str, object]]) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + xml_element(root, children)).encode("utf-8")


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def url_encoder(enabled: bool) -> Any:
    """``encoding-type=url``: keys and prefixes percent-encoded (the SDK decodes them with ``unquote``)."""
    return (lambda s: quote(s, safe="/")) if enabled else (lambda s: s)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def list_objects_result(
    bucket: str, q: dict[str, str], objs: list[StoredObject], prefixes: list[str], truncated: bool, last: str
) -> bytes:
    e = url_encoder(q.get("encoding-type") == "url")
    children: list[tuple[str, Any]] = [("Name", bucket)]
    if q.get("encoding-type") == "url":
        children.append(("EncodingType", "url"))
    children += [("Prefix", e(q.get("prefix", ""))), ("Marker", e(q.get("marker", "")))]
    children += [("MaxKeys", q.get("max-keys") or "1000"), ("Delimiter", q.get("delimiter", ""))]
    children += [("IsTruncated", _flag(truncated))] + ([("NextMarker", e(last))] if truncated else [])
    children += [("CommonPrefixes", [("Prefix", e(p))]) for p in prefixes]
    for obj in objs:
        entry = [("Key", e(obj.key)), ("LastModified", iso_time(obj.last_modified)), ("ETag", f'"{obj.etag}"')]
        entry += [("Size", obj.size), ("Owner", OWNER), ("StorageClass", "STANDARD")]
        children.append(("Contents", entry))
    return xml_document("ListBucketResult", children)


def list_parts_result(bucket: str, up: Upload, marker: int, max_parts: int, encode: bool) -> bytes:
    numbers = sorted(n for n in up.parts if n > marker)
    page, truncated = numbers[:max_parts], len(numbers) > max_parts
    children: list[tuple[str, Any]] = [("Bucket", bucket)] + ([("EncodingType", "url")] if encode else [])
    children += [("Key", url_encoder(encode)(up.key)), ("UploadId", up.upload_id), ("Initiator", OWNER)]
    children += [("Owner", OWNER), ("StorageClass", "STANDARD"), ("PartNumberMarker", marker)]
    children += [("NextPartNumberMarker", page[-1] if page else marker), ("MaxParts", max_parts)]
    children += [("IsTruncated", _flag(truncated))]
    for n in page:
        p = up.parts[n]
        entry = [("PartNumber", n), ("LastModified", iso_time(p.last_modified)), ("ETag", f'"{p.etag}"')]
        children.append(("Part", [*entry, ("Size", p.size)]))
    return xml_document("ListPartsResult", children)


def list_uploads_result(bucket: str, q: dict[str, str], ups: list[Upload]) -> bytes:
    """One page of uploads; ``ups`` is every upload under the prefix, ordered by key then start time."""
    encode = q.get("encoding-type") == "url"
    e = url_encoder(encode)
    key_marker, id_marker = q.get("key-marker", ""), q.get("upload-id-marker", "")
    max_uploads = max(1, min(int(q.get("max-uploads") or 1000), 1000))
    if key_marker:
        ids = [(u.key, u.upload_id) for u in ups]
        if id_marker and (key_marker, id_marker) in ids:
            ups = ups[ids.index((key_marker, id_marker)) + 1 :]
        else:
            ups = [u for u in ups if u.key > key_marker]
    page, truncated = ups[:max_uploads], len(ups) > max_uploads
    children: list[tuple[str, Any]] = [("Bucket", bucket)] + ([("EncodingType", "url")] if encode else [])
    children += [("KeyMarker", e(key_marker)), ("UploadIdMarker", id_marker), ("Prefix", e(q.get("prefix", "")))]
    children += [("MaxUploads", max_uploads), ("IsTruncated", _flag(truncated))]
    if truncated:
        children += [("NextKeyMarker", e(page[-1].key)), ("NextUploadIdMarker", page[-1].upload_id)]
    for u in page:
        entry = [("Key", e(u.key)), ("UploadId", u.upload_id), ("StorageClass", "STANDARD"), ("Initiator", OWNER)]
        children.append(("Upload", [*entry, ("Owner", OWNER), ("Initiated", iso_time(u.initiated))]))
    return xml_document("ListMultipartUploadsResult", children)


def parse_range(spec: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` as (start, length); None when not satisfiable.

    Raises ValueError when the header is malformed.
    """
    m = _RANGE.match(spec.strip())
    if not m or not (m.group(1) or m.group(2)):
        raise ValueError(spec)
    first, last = m.group(1), m.group(2)
    if not first:
        start, end = max(size - int(last), 0), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end - start + 1
