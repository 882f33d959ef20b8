"""A local Alibaba Cloud OSS server for tests: the REST API as oss2 speaks it to an IP endpoint (path style,
``/bucket/key`` with ``/`` in keys sent as ``%2F``), signatures v1 and v4 checked, objects on disk, CRC64 headers,
multipart, copy, and the fault injection of :mod:`multicloud_testbed.http`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from airflow_multicloud.stores.base import TransferConfig
from multicloud_testbed import disk
from multicloud_testbed import oss_xml as xml
from multicloud_testbed.http import DiskBackedService
from multicloud_testbed.oss_auth import check_signature
from multicloud_testbed.oss_multipart import MultipartHandler
from multicloud_testbed.oss_protocol import OssFailure, OssServer
from multicloud_testbed.oss_worm import WormOps
from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

if TYPE_CHECKING:
    from airflow_multicloud.stores.oss import OssStore

log = logging.getLogger(__name__)


class OssHandler(WormOps, MultipartHandler):
    """Routes each request to its OSS operation, after checking its signature."""

    # ---- routing ----------------------------------------------------------------------------------
    def route(self) -> Callable[[], None]:
        self.request_id = uuid.uuid4().hex[:24].upper()
        _, _, rest = self.raw_path.partition("/")
        raw_bucket, _, raw_key = rest.partition("/")
        self.bucket, self.key = unquote(raw_bucket), unquote(raw_key)
        self.operation, handler = self._pick()
        headers = {k.lower(): v for k, v in self.headers.items()}
        failure = check_signature(
            method=self.command,
            bucket=self.bucket,
            key=self.key,
            query=self.query,
            headers=headers,
            credentials=self.server.credentials,
            region=self.server.region,
        )
        if failure is not None:
            return lambda: self.send_error_response(failure.status, failure.code, failure.message)
        return lambda: self._guarded(handler)

    def _pick(self) -> tuple[str, Callable[[], None]]:
        q, m = self.query, self.command
        if not self.bucket:
            return ("ListBuckets", self._list_buckets) if m == "GET" else (f"{m} unsupported", self._unsupported)
        if not self.key:
            table: dict[tuple[str, str | None], tuple[str, Callable[[], None]]] = {
                ("POST", "wormExtend"): ("ExtendBucketWorm", self._extend_worm),
                ("POST", "wormId"): ("CompleteBucketWorm", self._complete_worm),
                ("POST", "worm"): ("InitiateBucketWorm", self._init_worm),
                ("GET", "worm"): ("GetBucketWorm", self._get_worm),
                ("DELETE", "worm"): ("AbortBucketWorm", self._abort_worm),
                ("PUT", None): ("PutBucket", self._put_bucket),
                ("DELETE", None): ("DeleteBucket", self._delete_bucket),
                ("GET", "bucketInfo"): ("GetBucketInfo", self._bucket_info),
                ("GET", "location"): ("GetBucketLocation", self._location),
                ("GET", "uploads"): ("ListMultipartUploads", self._list_uploads),
                ("GET", "list-type"): ("ListObjectsV2", self._list_v2),
                ("GET", None): ("ListObjects", self._list_v1),
                ("POST", "delete"): ("DeleteMultipleObjects", self._delete_multiple),
            }
        else:
            copy = "x-oss-copy-source" in self.headers
            table = {
                ("PUT", "uploadId"): ("UploadPartCopy", self._upload_part_copy)
                if copy
                else ("UploadPart", self._upload_part),
                ("PUT", None): ("CopyObject", self._copy) if copy else ("PutObject", self._put),
                ("GET", "uploadId"): ("ListParts", self._list_parts),
                ("GET", None): ("GetObject", self._get),
                ("HEAD", "objectMeta"): ("GetObjectMeta", self._head),
                ("HEAD", None): ("HeadObject", self._head),
                ("DELETE", "uploadId"): ("AbortMultipartUpload", self._abort),
                ("DELETE", None): ("DeleteObject", self._delete),
                ("POST", "uploads"): ("InitiateMultipartUpload", self._initiate),
                ("POST", "uploadId"): ("CompleteMultipartUpload", self._complete),
            }
        for (method, param), found in table.items():
            if method == m and (param is None or param in q):
                return found
        return f"{m} unsupported", self._unsupported

    # ---- buckets ----------------------------------------------------------------------------------
    def _put_bucket(self) -> None:
        self._read_body()
        self.server.buckets.create_bucket(self.bucket)
        self.server.created.setdefault(self.bucket, time.time())
        self._ok(headers={"Location": f"/{self.bucket}"})

    def _delete_bucket(self) -> None:
        if self.server.buckets.list(self.bucket, max_keys=1)[0] or self.server.buckets.list_uploads(self.bucket):
            raise OssFailure(409, "BucketNotEmpty", "The bucket you tried to delete is not empty.")
        self.server.buckets.delete_bucket(self.bucket)
        self._ok(status=204)

    def _list_buckets(self) -> None:
        """GET Service: every bucket of the account (one account per server)."""
        host = f"{self.server.host}:{self.server.port}"
        created = {b: self.server.created.get(b, 0.0) for b in self.server.buckets.buckets()}
        self._ok(xml.list_buckets(created, self.server.region, host))

    def _bucket_info(self) -> None:
        created = self.server.created.get(self.bucket, time.time())
        self._ok(xml.bucket_info(self.bucket, self.server.region, created, f"{self.server.host}:{self.server.port}"))

    def _location(self) -> None:
        self._ok(xml.location(self.server.region))

    def _list_page(self, after: str, max_keys: int) -> tuple[list[disk.StoredObject], list[str], bool, str]:
        prefix, delimiter = self.query.get("prefix", ""), self.query.get("delimiter", "")
        return self.server.buckets.list(self.bucket, prefix, after, delimiter, max_keys)

    def _list_v1(self) -> None:
        max_keys = self._max("max-keys", 100)
        page = self._list_page(self.query.get("marker", ""), max_keys)
        self._ok(xml.list_objects_v1(self.bucket, self.query, max_keys, page))

    def _list_v2(self) -> None:
        max_keys = self._max("max-keys", 100)
        token = self.query.get("continuation-token", "")
        try:
            after = (
                base64.urlsafe_b64decode(token.encode()).decode("utf-8") if token else self.query.get("start-after", "")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise OssFailure(400, "InvalidArgument", "The continuation token is not valid.") from None
        page = self._list_page(after, max_keys)
        next_token = base64.urlsafe_b64encode(page[3].encode("utf-8")).decode()
        self._ok(xml.list_objects_v2(self.bucket, self.query, max_keys, page, next_token))

    def _delete_multiple(self) -> None:
        md5 = self._content_md5_hex()
        raw = self._read_body()
        if md5 is None:
            raise OssFailure(400, "MissingArgument", "DeleteMultipleObjects needs a Content-MD5 header.")
        if hashlib.md5(raw).hexdigest() != md5:
            raise OssFailure(400, "InvalidDigest", "The Content-MD5 you specified did not match what we received.")
        try:
            root = ET.fromstring(raw)
        except ET.ParseError:
            raise OssFailure(400, "MalformedXML", "The XML you provided was not well-formed.") from None
        keys = [node.findtext("Key") or "" for node in root.findall("Object")]
        for key in keys:  # nothing is deleted when one of them is retained
            self.guard(key)
        for key in keys:
            self.server.buckets.delete(self.bucket, key)
        quiet = (root.findtext("Quiet") or "false").lower() == "true"
        self._ok(xml.delete_result([] if quiet else keys, self.query.get("encoding-type") == "url"))

    # ---- objects ----------------------------------------------------------------------------------
    def _put(self) -> None:
        self.guard(self.key)
        obj = self.server.buckets.put(
            self.bucket,
            self.key,
            self._body(),
            self.body_length,
            content_type=self.headers.get("Content-Type") or "application/octet-stream",
            metadata=self._user_metadata(),
            content_md5_hex=self._content_md5_hex(),
        )
        self._ok(headers=self._written(obj.etag, obj.crc64))

    def _range(self, size: int) -> tuple[int, int] | None:
        """(start, length) for a satisfiable single Range; None serves the whole object, as OSS does for a
        malformed one."""
        spec = self.headers.get("Range", "")
        if not spec.startswith("bytes=") or "," in spec or size == 0:
            return None
        first, _, last = spec[len("bytes=") :].strip().partition("-")
        try:
            if not first:
                start, end = max(size - int(last), 0), size - 1
            else:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
        except ValueError:
            return None
        if start >= size:
            raise OssFailure(416, "InvalidRange", "The requested range cannot be satisfied.")
        if end < start:
            return None
        return start, end - start + 1

    def _get(self) -> None:
        obj, f = self.server.buckets.open(self.bucket, self.key)
        with f:
            self._check_preconditions(obj)
            headers = self._object_headers(obj)
            rng = self._range(obj.size)
            if rng is None:
                self.send_object(200, f, 0, obj.size, headers)
                return
            start, length = rng
            headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{obj.size}"
            self.send_object(206, f, start, length, headers)

    def _check_preconditions(self, obj: disk.StoredObject) -> None:
        match = self.headers.get("If-Match")
        if match is not None and match.strip('"').upper() != obj.etag.upper():
            raise OssFailure(
                412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold."
            )

    def _head(self) -> None:
        obj, f = self.server.buckets.open(self.bucket, self.key)
        with f:
            self._check_preconditions(obj)
            self.send_object(200, f, 0, obj.size, self._object_headers(obj))

    def _delete(self) -> None:
        self.guard(self.key)
        self.server.buckets.delete(self.bucket, self.key)
        self._ok(status=204)

    def _copy(self) -> None:
        src_bucket, src_key = self._copy_source()
        replace = self.headers.get("x-oss-metadata-directive", "COPY").upper() == "REPLACE"
        self.guard(self.key)
        obj = self.server.buckets.copy(
            src_bucket,
            src_key,
            self.bucket,
            self.key,
            metadata=self._user_metadata() if replace else None,
            content_type=self.headers.get("Content-Type") if replace else None,
        )
        self._ok(xml.copy_result("CopyObjectResult", obj.etag, obj.last_modified), self._written(obj.etag, obj.crc64))


class OssService(DiskBackedService):
    """A running local OSS (satisfies :class:`~multicloud_testbed.services.LocalService`).

    :param root: folder for the buckets (a temporary one when None).
    :param port: TCP port on 127.0.0.1 (0: any free port).
    :param region: the region v4 signatures must name.
    """

    name = "oss"

    def __init__(self, root: str | Path | None = None, port: int = 0, region: str = "cn-hangzhou") -> None:
        self.region = region
        self.server: OssServer = OssServer(OssHandler, root=root, port=port, region=region)
        self._attach(self.server)

    def create_bucket(self, name: str | None = None) -> str:
        bucket = name or f"mc-oss-{uuid.uuid4().hex[:16]}"
        self.server.buckets.create_bucket(bucket)
        self.server.created.setdefault(bucket, time.time())
        return bucket

    def store(
        self,
        bucket: str,
        *,
        transfer: TransferConfig | None = None,
        secret: str | None = None,
        label: str = "",
        auth_version: str = "v4",
    ) -> OssStore:
        from airflow_multicloud.stores.oss import OssStore

        return OssStore.from_settings(
            bucket,
            access_key_id=ACCESS_KEY,
            access_key_secret=SECRET_KEY if secret is None else secret,
            endpoint=self.endpoint,
            region=self.region,
            auth_version=auth_version,
            label=label or "oss_local",
            transfer=transfer,
        )

    def connection(self, conn_id: str) -> dict[str, Any]:
        return {
            "conn_type": "multicloud_oss",
            "description": f"local OSS server for {conn_id}",
            "login": ACCESS_KEY,
            "password": SECRET_KEY,
            "extra": {"region": self.region, "endpoint": self.endpoint, "auth_version": "v4"},
        }
