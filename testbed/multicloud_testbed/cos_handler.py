"""The request handler of the local COS: the XML REST API as cos-python-sdk-v5 speaks it, over disk-backed buckets.

Virtual-host style only: the bucket is the first label of ``Host: <bucket>.cos.<region>.myqcloud.com``, so the
SDK is pointed here by a requests adapter that keeps that Host header (see ``CosStore.from_settings(endpoint=)``).
Every request's signature is verified; errors are the XML COS sends, which the SDK needs to keep the code.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from email.utils import formatdate
from typing import Any, BinaryIO, cast
from urllib.parse import quote, unquote

from multicloud_testbed import disk
from multicloud_testbed.cos_limits import CosLimits, LimitError, check_copy_source, check_part_sizes
from multicloud_testbed.cos_locks import CosLockOps
from multicloud_testbed.cos_protocol import (
    OWNER,
    SignatureError,
    iso_time,
    list_objects_result,
    list_parts_result,
    list_uploads_result,
    parse_range,
    verify_request,
    xml_document,
)
from multicloud_testbed.http import AbortConnection, ObjectHandler
from multicloud_testbed.locks import RetentionRefused

log = logging.getLogger(__name__)
_ERRORS: dict[type[Exception], tuple[int, str]] = {
    disk.NoSuchBucket: (404, "NoSuchBucket"),
    disk.NoSuchKey: (404, "NoSuchKey"),
    disk.NoSuchUpload: (404, "NoSuchUpload"),
    disk.InvalidPart: (400, "InvalidPart"),
    disk.BadDigest: (400, "BadDigest"),
    RetentionRefused: (403, "AccessDenied"),
}


class CosError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


MAX_KEY_BYTES = 850  # COS object keys: at most 850 bytes, not led by / or \, no CAN, EM, SUB or ESC


def _check_key(key: str) -> None:
    """Refuse a key the real COS refuses, as it does (the SDK drops one leading '/' before sending)."""
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise CosError(400, "KeyTooLong", f"The object key is {size} bytes, longer than {MAX_KEY_BYTES}")
    if key[0] in "/\\" or any(c in key for c in "\x18\x19\x1a\x1b"):
        raise CosError(400, "InvalidArgument", "The object key starts with / or \\ or holds a control character")


class CosHandler(CosLockOps, ObjectHandler):
    server_version = "tencent-cos"

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):
            # a client dropping an idle keep-alive connection is normal, not a server error worth a traceback
            self.close_connection = True

    def route(self) -> Callable[[], None]:
        host = self.headers.get("Host", "").split(":")[0]
        # service.cos.myqcloud.com (or service.cos.tencentcos.cn) is the account's endpoint, no bucket
        first = host.split(".")[0]
        self.bucket = first if ".cos." in host and first != "service" else ""
        self.key = self.url_path[1:]
        self.operation = self._operation()
        self.request_id = uuid.uuid4().hex
        try:
            verify_request(self.command, self.url_path, self.raw_query, self.headers, self.server.credentials)
        except SignatureError as exc:
            err = exc
            return lambda: self.send_error_response(403, err.code, err.message)
        handler: Callable[[], None] = getattr(self, "op_" + self.operation, self._unsupported)
        return lambda: self._run(handler)

    def _operation(self) -> str:
        q, m = self.query, self.command
        if "object-lock" in q and not self.key and m in ("PUT", "GET"):
            return m.capitalize() + "BucketObjectLock"
        if "retention" in q and self.key and m in ("PUT", "GET"):
            return m.capitalize() + "ObjectRetention"
        if not self.bucket and not self.key:
            return "ListBuckets" if m == "GET" else "Unsupported"
        if not self.key:
            table = {"HEAD": "HeadBucket", "PUT": "PutBucket", "DELETE": "DeleteBucket"}
            if m == "GET":
                return "ListMultipartUploads" if "uploads" in q else "ListObjects"
            if m == "POST" and "delete" in q:
                return "DeleteObjects"
            return table.get(m, "Unsupported")
        copy = "x-cos-copy-source" in self.headers
        if m == "PUT" and "uploadId" in q:
            return "UploadPartCopy" if copy else "UploadPart"
        if m == "PUT":
            return "CopyObject" if copy else "PutObject"
        if m == "GET":
            return "ListParts" if "uploadId" in q else "GetObject"
        if m == "POST":
            return "InitiateMultipartUpload" if "uploads" in q else "CompleteMultipartUpload"
        if m == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in q else "DeleteObject"
        return "HeadObject" if m == "HEAD" else "Unsupported"

    def _run(self, handler: Callable[[], None]) -> None:
        try:
            # DiskBuckets.head reports a missing bucket as a missing key (NoSuchBucket is a KeyError)
            if self.operation not in ("PutBucket", "ListBuckets") and not self.server.buckets.bucket_exists(
                self.bucket
            ):
                raise disk.NoSuchBucket(self.bucket)
            if self.key:
                _check_key(self.key)
            handler()
        except (CosError, LimitError) as exc:
            self.send_error_response(exc.status, exc.code, exc.message)
        except tuple(_ERRORS) as exc:
            status, code = _ERRORS[type(exc)]
            self.send_error_response(status, code, f"{code}: {exc}")
        except (AbortConnection, ConnectionError):
            raise
        except (ValueError, ET.ParseError) as exc:
            if self.status_sent:
                raise
            self.send_error_response(400, "InvalidArgument", f"bad request: {exc}")
        except Exception as exc:
            if self.status_sent:
                raise
            log.exception("local COS failed on %s %s", self.command, self.path)
            self.send_error_response(500, "InternalError", f"{type(exc).__name__}: {exc}")

    def _unsupported(self) -> None:
        raise CosError(501, "NotImplemented", f"{self.command} {self.operation} is not implemented by this server")

    # ---- responses ---------------------------------------------------------------------------------
    def send_error_response(self, status: int, code: str, message: str, resource: str = "") -> None:
        resource = resource or f"{self.headers.get('Host', '')}{self.raw_path}"
        body = xml_document(
            "Error",
            [
                ("Code", code),
                ("Message", message),
                ("Resource", resource),
                ("RequestId", self.request_id),
                ("TraceId", self.request_id),
            ],
        )
        self.send_bytes(status, body, self._base_headers())

    def _base_headers(self) -> dict[str, str]:
        return {"x-cos-request-id": getattr(self, "request_id", "-"), "Server": "tencent-cos"}

    def _reply(
        self,
        status: int = 200,
        root: str | None = None,
        children: list[tuple[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = xml_document(root, children or []) if root else b""
        self.send_bytes(status, body, {**self._base_headers(), **(headers or {})})

    def _object_headers(self, obj: disk.StoredObject) -> dict[str, str]:
        hdrs = {
            "ETag": f'"{obj.etag}"',
            "Last-Modified": formatdate(obj.last_modified, usegmt=True),
            "Content-Type": obj.content_type,
            "Accept-Ranges": "bytes",
            "x-cos-hash-crc64ecma": str(obj.crc64),
            "x-cos-storage-class": "STANDARD",
            **self._base_headers(),
        }
        hdrs.update({f"x-cos-meta-{k}": v for k, v in obj.metadata.items()})
        return hdrs

    def _user_metadata(self) -> dict[str, str]:
        return {
            k.lower()[len("x-cos-meta-") :]: v for k, v in self.headers.items() if k.lower().startswith("x-cos-meta-")
        }

    def _content_md5_hex(self) -> str | None:
        value = self.headers.get("Content-MD5")
        if value is None:
            return None
        try:
            return base64.b64decode(value, validate=True).hex()
        except (binascii.Error, ValueError):
            raise CosError(400, "InvalidDigest", "the Content-MD5 header is not base64") from None

    def _body_stream(self) -> BinaryIO:
        assert self.body is not None
        return cast(BinaryIO, self.body)

    def _small_body(self) -> bytes:
        assert self.body is not None
        return self.body.read(self.body_length) if self.body_length >= 0 else self.body.read()

    def _upload(self) -> disk.Upload:
        up = self.server.buckets.upload(self.query["uploadId"])
        if up.bucket != self.bucket or up.key != self.key:
            raise disk.NoSuchUpload(self.query["uploadId"])
        return up

    @property
    def limits(self) -> CosLimits:
        return getattr(self.server, "limits", None) or CosLimits()

    def _copy_source(self) -> tuple[str, str]:
        source = unquote(self.headers["x-cos-copy-source"].split("?")[0]).lstrip("/")
        host, _, key = source.partition("/")
        bucket = host.split(".")[0]
        if not bucket or not key:
            raise CosError(400, "InvalidArgument", "x-cos-copy-source must be <bucket>.cos.<region>.myqcloud.com/<key>")
        return bucket, key

    # ---- buckets -------------------------------------------------------------------------------------
    def op_ListBuckets(self) -> None:
        """GET Service: every bucket of the account (one account per server)."""
        region = getattr(self.server, "region", "ap-guangzhou")
        buckets = [
            ("Bucket", [("Name", b), ("Location", region), ("CreationDate", iso_time(0)), ("BucketType", "cos")])
            for b in self.server.buckets.buckets()
        ]
        self._reply(200, "ListAllMyBucketsResult", [("Owner", OWNER), ("Buckets", buckets)])

    def op_HeadBucket(self) -> None:
        self.server.buckets._objects(self.bucket)
        self._reply(headers={"x-cos-bucket-region": getattr(self.server, "region", "")})

    def op_PutBucket(self) -> None:
        if self.server.buckets.bucket_exists(self.bucket):
            raise CosError(409, "BucketAlreadyOwnedByYou", f"bucket {self.bucket} already exists")
        self.server.buckets.create_bucket(self.bucket)
        self._reply()

    def op_DeleteBucket(self) -> None:
        self.server.buckets.delete_bucket(self.bucket)
        self._reply(204)

    def op_ListObjects(self) -> None:
        q = self.query
        prefix, marker, delim = q.get("prefix", ""), q.get("marker", ""), q.get("delimiter", "")
        max_keys = max(0, min(int(q.get("max-keys") or 1000), 1000))
        after = marker
        if (
            delim
            and marker
            and marker.startswith(prefix)
            and marker.find(delim, len(prefix)) == len(marker) - len(delim)
        ):
            after = marker + "\U0010ffff"  # a common prefix as marker: skip everything rolled up under it
        objs, prefixes, truncated, last = self.server.buckets.list(self.bucket, prefix, after, delim, max_keys)
        self.send_bytes(200, list_objects_result(self.bucket, q, objs, prefixes, truncated, last), self._base_headers())

    def op_DeleteObjects(self) -> None:
        root = ET.fromstring(self._small_body())
        quiet = (root.findtext("Quiet") or "false").lower() == "true"
        deleted = []
        errors: list[tuple[str, Any]] = []
        for node in root.iter("Object"):
            key = node.findtext("Key") or ""
            try:
                self.guard(key)
            except RetentionRefused as exc:
                errors.append(("Error", [("Key", key), ("Code", "AccessDenied"), ("Message", str(exc))]))
                continue
            self.server.buckets.delete(self.bucket, key)
            self.server.locks.forget(self.bucket, key)
            deleted.append(("Deleted", [("Key", key)]))
        self._reply(200, "DeleteResult", ([] if quiet else deleted) + errors)

    # ---- objects -------------------------------------------------------------------------------------
    def op_PutObject(self) -> None:
        asked = self.requested_lock()
        self.guard(self.key)
        obj = self.server.buckets.put(
            self.bucket,
            self.key,
            self._body_stream(),
            self.body_length,
            content_type=self.headers.get("Content-Type") or "application/octet-stream",
            metadata=self._user_metadata(),
            content_md5_hex=self._content_md5_hex(),
        )
        self.retain_written(self.key, asked)
        self._reply(headers={"ETag": f'"{obj.etag}"', "x-cos-hash-crc64ecma": str(obj.crc64)})

    def op_HeadObject(self) -> None:
        obj = self.server.buckets.head(self.bucket, self.key)
        self.send_object(200, None, 0, obj.size, self._object_headers(obj))  # type: ignore[arg-type]

    def op_GetObject(self) -> None:
        obj, f = self.server.buckets.open(self.bucket, self.key)
        with f:
            start, length, status = 0, obj.size, 200
            headers = self._object_headers(obj)
            spec = self.headers.get("Range")
            if spec:
                start, length = self._parse_range(spec, obj.size)
                status = 206
                headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{obj.size}"
            self.send_object(status, f, start, length, headers)

    @staticmethod
    def _parse_range(spec: str, size: int) -> tuple[int, int]:
        try:
            found = parse_range(spec, size)
        except ValueError:
            raise CosError(400, "InvalidArgument", f"bad Range header {spec!r}") from None
        if found is None:
            raise CosError(416, "InvalidRange", f"range {spec!r} is not satisfiable for {size} bytes")
        return found

    def op_DeleteObject(self) -> None:
        self.guard(self.key)
        self.server.buckets.delete(self.bucket, self.key)
        self.server.locks.forget(self.bucket, self.key)
        self._reply(204)

    def op_CopyObject(self) -> None:
        src_bucket, src_key = self._copy_source()
        check_copy_source(self.limits, self.server.buckets.head(src_bucket, src_key).size)
        replace = self.headers.get("x-cos-metadata-directive", "Copy").lower() == "replaced"
        asked = self.requested_lock()
        self.guard(self.key)
        obj = self.server.buckets.copy(
            src_bucket,
            src_key,
            self.bucket,
            self.key,
            metadata=self._user_metadata() if replace else None,
            content_type=self.headers.get("Content-Type") if replace else None,
        )
        self.retain_written(self.key, asked)
        self._reply(
            200,
            "CopyObjectResult",
            [("ETag", f'"{obj.etag}"'), ("LastModified", iso_time(obj.last_modified)), ("CRC64", obj.crc64)],
            headers={"x-cos-hash-crc64ecma": str(obj.crc64)},
        )

    # ---- multipart -----------------------------------------------------------------------------------
    def op_InitiateMultipartUpload(self) -> None:
        asked = self.requested_lock()
        up = self.server.buckets.create_upload(
            self.bucket,
            self.key,
            content_type=self.headers.get("Content-Type") or "application/octet-stream",
            metadata=self._user_metadata(),
        )
        if asked is not None:
            self.server.locks.pending[up.upload_id] = asked
        self._reply(
            200,
            "InitiateMultipartUploadResult",
            [("Bucket", self.bucket), ("Key", self.key), ("UploadId", up.upload_id)],
        )

    def _part_number(self) -> int:
        number = self.query.get("partNumber", "")
        if not number.isdigit() or not 1 <= int(number) <= 10000:
            raise CosError(400, "InvalidArgument", f"partNumber must be 1..10000, got {number!r}")
        return int(number)

    def op_UploadPart(self) -> None:
        up, number = self._upload(), self._part_number()
        part = self.server.buckets.put_part(
            up.upload_id,
            number,
            self._body_stream(),
            self.body_length,
            self._content_md5_hex(),
        )
        self._reply(headers={"ETag": f'"{part.etag}"', "x-cos-hash-crc64ecma": str(part.crc64)})

    def op_UploadPartCopy(self) -> None:
        up, number = self._upload(), self._part_number()
        src_bucket, src_key = self._copy_source()
        size = self.server.buckets.head(src_bucket, src_key).size
        start, end = 0, size - 1
        spec = self.headers.get("x-cos-copy-source-range")
        if spec:
            start, length = self._parse_range(spec, size)
            end = start + length - 1
        part = self.server.buckets.copy_part(up.upload_id, number, src_bucket, src_key, start, end)
        self._reply(
            200,
            "CopyPartResult",
            [("ETag", f'"{part.etag}"'), ("LastModified", iso_time(part.last_modified)), ("CRC64", part.crc64)],
        )

    def op_ListParts(self) -> None:
        up = self._upload()
        marker = int(self.query.get("part-number-marker") or 0)
        max_parts = max(1, min(int(self.query.get("max-parts") or 1000), 1000))
        body = list_parts_result(self.bucket, up, marker, max_parts, self.query.get("encoding-type") == "url")
        self.send_bytes(200, body, self._base_headers())

    def op_ListMultipartUploads(self) -> None:
        ups = self.server.buckets.list_uploads(self.bucket, self.query.get("prefix", ""))
        self.send_bytes(200, list_uploads_result(self.bucket, self.query, ups), self._base_headers())

    def op_CompleteMultipartUpload(self) -> None:
        up = self._upload()
        try:
            root = ET.fromstring(self._small_body())
            parts = [(int(p.findtext("PartNumber") or 0), p.findtext("ETag") or "") for p in root.iter("Part")]
        except (ET.ParseError, ValueError):
            raise CosError(400, "MalformedXML", "the CompleteMultipartUpload body is not valid XML") from None
        check_part_sizes(self.limits, [(n, up.parts[n].size) for n, _ in parts if n in up.parts])
        self.guard(self.key)
        asked = self.server.locks.pending.pop(up.upload_id, None)
        obj = self.server.buckets.complete(up.upload_id, parts)
        self.retain_written(obj.key, asked)
        self._reply(
            200,
            "CompleteMultipartUploadResult",
            [
                ("Location", f"{self.headers.get('Host', '')}/{quote(obj.key)}"),
                ("Bucket", self.bucket),
                ("Key", obj.key),
                ("ETag", f'"{obj.etag}"'),
            ],
            headers={"x-cos-hash-crc64ecma": str(obj.crc64)},
        )

    def op_AbortMultipartUpload(self) -> None:
        self.server.buckets.abort(self._upload().upload_id)
        self._reply(204)
