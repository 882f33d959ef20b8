"""The plumbing of the local OSS server: its HTTP server, the OSS error answer, and the request helpers every
OSS operation uses (headers, bodies, Content-MD5, user metadata)."""

from __future__ import annotations

import base64
import binascii
import logging
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import unquote

from multicloud_testbed import disk
from multicloud_testbed import oss_xml as xml
from multicloud_testbed.http import AbortConnection, LocalObjectServer, ObjectHandler
from multicloud_testbed.locks import RetentionRefused
from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

log = logging.getLogger(__name__)


MAX_KEY_BYTES = 1023  # OSS object names are 1-1023 bytes of UTF-8
MIN_PART_SIZE = 100 * 1024  # OSS: every part but the last is at least 100 KiB
MAX_PART_NUMBER = 10000


class OssFailure(Exception):
    """An OSS error answer raised from inside a handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_DISK_ERRORS: dict[type[Exception], tuple[int, str, str]] = {
    disk.NoSuchBucket: (404, "NoSuchBucket", "The specified bucket does not exist."),
    disk.NoSuchKey: (404, "NoSuchKey", "The specified key does not exist."),
    disk.NoSuchUpload: (404, "NoSuchUpload", "The specified upload does not exist."),
    disk.InvalidPart: (400, "InvalidPart", "One or more of the specified parts could not be found."),
    disk.BadDigest: (400, "InvalidDigest", "The Content-MD5 you specified did not match what we received."),
}


class OssServer(LocalObjectServer):
    """The HTTP server plus the region that v4 signatures must name."""

    def __init__(self, handler: type[OssHandlerBase], *, root: str | Path | None, port: int, region: str) -> None:
        super().__init__(handler, port=port, root=root, credentials={ACCESS_KEY: SECRET_KEY})
        self.region = region
        self.created: dict[str, float] = {}

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients drop idle keep-alive connections with a reset; that is not a server error worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            log.debug("connection from %s dropped", client_address)
            return
        super().handle_error(request, client_address)


class OssHandlerBase(ObjectHandler):
    """Request state and helpers shared by the OSS operations; the operations live in subclasses."""

    server: OssServer
    server_version = "AliyunOSS"
    request_id = ""

    def _guarded(self, handler: Callable[[], None]) -> None:
        try:
            if self.bucket and self.operation != "PutBucket" and not self.server.buckets.bucket_exists(self.bucket):
                raise OssFailure(404, "NoSuchBucket", "The specified bucket does not exist.")
            if self.key and (len(self.key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES or self.key[0] in "/\\"):
                raise OssFailure(
                    400, "InvalidObjectName", f"Object names are 1-{MAX_KEY_BYTES} bytes, not led by / or \\"
                )
            handler()
        except OssFailure as exc:
            self.send_error_response(exc.status, exc.code, exc.message)
        except tuple(_DISK_ERRORS) as exc:
            status, code, message = _DISK_ERRORS[type(exc)]
            self.send_error_response(status, code, message)
        except (ConnectionError, TimeoutError, AbortConnection):
            raise  # the connection broke: the base handler closes it
        except Exception:
            if self.status_sent:
                raise
            log.exception("local OSS server failed on %s %s", self.command, self.path)
            self.send_error_response(500, "InternalError", "We encountered an internal error. Please try again.")

    # ---- responses --------------------------------------------------------------------------------
    def _hdrs(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"x-oss-request-id": self.request_id, "Server": "AliyunOSS", **(extra or {})}

    def send_error_response(self, status: int, code: str, message: str, resource: str = "") -> None:
        body = xml.error(
            code, message, self.request_id, self.server.host, {"BucketName": self.bucket} if self.bucket else None
        )
        headers = self._hdrs()
        if self.command == "HEAD":
            headers["x-oss-err"] = base64.b64encode(body).decode()  # HEAD has no body: oss2 reads the error here
        self.send_bytes(status, body, headers)

    def guard(self, key: str) -> None:
        """Refuse to delete or overwrite ``key`` while the bucket's WORM retention holds it (409 FileImmutable)."""
        try:
            modified: float | None = self.server.buckets.head(self.bucket, key).last_modified
        except KeyError:
            modified = None
        try:
            self.server.locks.guard(self.bucket, key, modified)
        except RetentionRefused as exc:
            raise OssFailure(409, "FileImmutable", f"The object you specified is immutable: {exc}.") from None

    def _ok(self, body: bytes = b"", headers: dict[str, str] | None = None, status: int = 200) -> None:
        self.send_bytes(status, body, self._hdrs(headers))

    def _object_headers(self, obj: disk.StoredObject) -> dict[str, str]:
        headers = self._hdrs(
            {
                "Content-Type": obj.content_type,
                "ETag": xml.oss_etag(obj.etag),
                "Last-Modified": formatdate(obj.last_modified, usegmt=True),
                "Accept-Ranges": "bytes",
                "x-oss-object-type": xml.object_type(obj),
                "x-oss-storage-class": "Standard",
                "x-oss-hash-crc64ecma": str(obj.crc64),
            }
        )
        headers.update({f"x-oss-meta-{k}": v for k, v in obj.metadata.items()})
        return headers

    def _body(self) -> BinaryIO:
        assert self.body is not None
        return cast(BinaryIO, self.body)

    def _read_body(self) -> bytes:
        if self.body_length < 0:
            return self._body().read(-1)
        out = bytearray()
        while len(out) < self.body_length:
            chunk = self._body().read(self.body_length - len(out))
            if not chunk:
                raise ConnectionError("request body ended early")
            out += chunk
        return bytes(out)

    def _content_md5_hex(self) -> str | None:
        value = self.headers.get("Content-MD5")
        if value is None:
            return None
        try:
            digest = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) != 16:
            raise OssFailure(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
        return digest.hex()

    def _user_metadata(self) -> dict[str, str]:
        return {
            k.lower()[len("x-oss-meta-") :]: v for k, v in self.headers.items() if k.lower().startswith("x-oss-meta-")
        }

    def _xml_body(self) -> ET.Element:
        try:
            return ET.fromstring(self._read_body())
        except ET.ParseError:
            raise OssFailure(400, "MalformedXML", "The XML you provided was not well-formed.") from None

    def _unsupported(self) -> None:
        raise OssFailure(
            400, "NotImplemented", f"{self.command} {self.path} is not implemented by the local OSS server"
        )

    def _max(self, param: str, default: int) -> int:
        try:
            value = int(self.query.get(param) or default)
        except ValueError:
            value = -1
        if not 1 <= value <= 1000:
            raise OssFailure(400, "InvalidArgument", f"{param} must be an integer from 1 to 1000")
        return value

    def _written(self, etag: str, crc: int) -> dict[str, str]:
        return {"ETag": xml.oss_etag(etag), "x-oss-hash-crc64ecma": str(crc)}

    def _copy_source(self) -> tuple[str, str]:
        source = unquote(self.headers.get("x-oss-copy-source", ""))
        src_bucket, _, src_key = source.lstrip("/").partition("/")
        if not src_bucket or not src_key:
            raise OssFailure(400, "InvalidArgument", "x-oss-copy-source must be /bucket/key")
        if not self.server.buckets.bucket_exists(src_bucket):
            raise OssFailure(404, "NoSuchBucket", "The specified source bucket does not exist.")
        return src_bucket, src_key
