"""A local S3: moto's real S3 server in a threaded werkzeug server, behind a WSGI middleware that logs every
request, injects faults (see :mod:`multicloud_testbed.faults`), checks SigV4 signatures, the signed
payload hash, Content-MD5 and the 1024-byte key limit (moto checks none of them) and drops moto's
``x-amz-version-id: null`` header.

moto keeps its S3 state process-wide: two ``S3Service`` in one process see the same buckets (``create_bucket``
names are unique per service, so tests do not collide). For truly separate servers run
``python -m multicloud_testbed.s3_server --port N`` in its own process.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import io
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

from werkzeug.serving import BaseWSGIServer, make_server

from airflow_multicloud.stores.base import ObjectStore, TransferConfig
from multicloud_testbed.faults import Faults
from multicloud_testbed.http import RequestRecord
from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

StartResponse = Callable[..., Any]
_UPLOAD = re.compile(rb"<Upload>.*?</Upload>", re.DOTALL)
_UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")
_INITIATED = re.compile(rb"<Initiated>[^<]*</Initiated>")
_HANDLER = "multicloud.handler"
MAX_KEY_BYTES = 1024  # S3 object keys: at most 1024 bytes of UTF-8, else 400 KeyTooLongError


def operation_name(method: str, bucket: str, key: str, query: dict[str, str], headers: dict[str, str]) -> str:
    """The S3 API operation a request stands for (as in the AWS docs), from method, path, query and headers."""
    copy = "x-amz-copy-source" in headers
    if not bucket:
        return "ListBuckets"
    if not key:
        sub = next((q for q in ("uploads", "versions", "delete", "versioning", "location", "policy") if q in query), "")
        table = {
            ("GET", "uploads"): "ListMultipartUploads",
            ("GET", "versions"): "ListObjectVersions",
            ("POST", "delete"): "DeleteObjects",
            ("GET", "versioning"): "GetBucketVersioning",
            ("PUT", "versioning"): "PutBucketVersioning",
            ("GET", "location"): "GetBucketLocation",
            ("GET", ""): "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects",
            ("PUT", ""): "CreateBucket",
            ("DELETE", ""): "DeleteBucket",
            ("HEAD", ""): "HeadBucket",
        }
        return table.get((method, sub), f"{method}Bucket")
    if "uploadId" in query:
        if method == "PUT":
            return "UploadPartCopy" if copy else "UploadPart"
        return {"GET": "ListParts", "POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload"}.get(
            method, f"{method}Upload"
        )
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    for sub in ("tagging", "acl", "retention", "legal-hold", "attributes"):
        if sub in query:
            name = "".join(w.capitalize() for w in sub.split("-"))
            return {"GET": f"GetObject{name}", "PUT": f"PutObject{name}", "DELETE": f"DeleteObject{name}"}.get(
                method, method + name
            )
    if method == "PUT":
        return "CopyObject" if copy else "PutObject"
    return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject", "POST": "PostObject"}.get(
        method, method
    )


def error_xml(code: str, message: str, resource: str = "") -> bytes:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{uuid.uuid4().hex}</RequestId></Error>"
    )
    return body.encode()


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def check_sigv4(method: str, raw_path: str, raw_query: str, headers: dict[str, str], secrets: dict[str, str]) -> str:
    """'' when the AWS4-HMAC-SHA256 Authorization header is right, else the S3 error code to answer."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "AccessDenied"
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 ") :].split(",") if "=" in p)
    try:
        access_key, date, region, service, _ = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
    except (KeyError, ValueError):
        return "AuthorizationHeaderMalformed"
    secret = secrets.get(access_key)
    if secret is None:
        return "InvalidAccessKeyId"
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)
    canon_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    payload = headers.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
    canonical = "\n".join([method, raw_path, query, canon_headers, ";".join(signed), payload])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", headers.get("x-amz-date", ""), scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _sign(_sign(_sign(_sign(("AWS4" + secret).encode(), date), region), service), "aws4_request")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return "" if hmac.compare_digest(expected, signature) else "SignatureDoesNotMatch"


class _Handler:
    """Mixin for moto's request handler: exposes itself to the middleware so a fault can drop the connection."""

    def make_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().make_environ()  # type: ignore[misc]
        environ[_HANDLER] = self
        return environ

    def log_request(self, *args: object) -> None:  # werkzeug prints every request otherwise
        pass


def _drop(environ: dict[str, Any], reset: bool) -> None:
    """Close the client connection after this request: with an RST when ``reset``, else a plain FIN."""
    handler = environ.get(_HANDLER)
    if handler is None:
        return
    handler.close_connection = True
    if reset:
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # werkzeug drains the unread request body before closing: without this it would wait for the client.
    with contextlib.suppress(OSError):
        handler.connection.shutdown(socket.SHUT_RD)


class S3Middleware:
    """Request log, faults, SigV4 and Content-MD5 checks in front of a moto S3 WSGI app."""

    def __init__(self, app: Callable[..., Iterable[bytes]], credentials: dict[str, str] | None) -> None:
        self.app = app
        self.credentials = credentials  # None: accept any signature
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._initiated: dict[str, str] = {}  # upload id -> when CreateMultipartUpload answered

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        split = urlsplit(raw)
        bucket, _, raw_key = split.path.lstrip("/").partition("/")
        bucket, key = unquote(bucket), unquote(raw_key)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        method = environ["REQUEST_METHOD"]
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                headers[name.replace("_", "-").lower()] = environ[name]
        op = operation_name(method, bucket, key, query, headers)
        rec = RequestRecord(method, op, bucket, key, query, 0, 0, 0, headers.get("range"))
        with self._lock:
            self.requests.append(rec)
        yield from self._serve(environ, start_response, rec, split.path, split.query, headers)

    def _serve(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        rec: RequestRecord,
        raw_path: str,
        raw_query: str,
        headers: dict[str, str],
    ) -> Iterator[bytes]:
        faults, op = self.faults, rec.operation
        length = int(headers.get("content-length") or 0)
        stream = environ["wsgi.input"]
        if faults.pick(("reset_request",), rec.method, op, rec.key) is not None:
            rec.bytes_in = len(stream.read(max(length // 2, 1))) if length else 0
            _drop(environ, reset=True)
            raise ConnectionResetError("fault injection: connection reset while reading the request body")
        chunked = not length and environ.get("wsgi.input_terminated")  # werkzeug de-chunks the stream for us
        body = stream.read(length) if length else (stream.read() if chunked else b"")
        rec.bytes_in = len(body)
        if body and rec.method in ("PUT", "POST") and faults.pick(("flip_request",), rec.method, op, rec.key):
            flipped = bytearray(body)
            flipped[len(body) // 2] ^= 0xFF
            body = bytes(flipped)
        environ["wsgi.input"] = io.BytesIO(body)
        rule = faults.pick(("latency",), rec.method, op, rec.key)
        if rule is not None:
            time.sleep(rule.latency)
        if self.credentials is not None:
            code = check_sigv4(rec.method, raw_path, raw_query, headers, self.credentials)
            if code:
                message = "The request signature we calculated does not match the signature you provided."
                yield from self._error(start_response, rec, 403, code, message, raw_path)
                return
        key_bytes = len(rec.key.encode("utf-8", "surrogatepass"))
        if key_bytes > MAX_KEY_BYTES:  # moto accepts any length
            message = f"Your key is too long: {key_bytes} bytes, over {MAX_KEY_BYTES}"
            yield from self._error(start_response, rec, 400, "KeyTooLongError", message, raw_path)
            return
        rule = faults.pick(("status",), rec.method, op, rec.key)
        if rule is not None:
            yield from self._error(
                start_response, rec, rule.status, rule.code, "fault injection: " + rule.code, raw_path
            )
            return
        sha = headers.get("x-amz-content-sha256", "")
        if len(sha) == 64 and sha != hashlib.sha256(body).hexdigest():  # as AWS, for signed payloads
            message = "The provided 'x-amz-content-sha256' header does not match what was computed."
            yield from self._error(start_response, rec, 400, "XAmzContentSHA256Mismatch", message, raw_path)
            return
        md5 = headers.get("content-md5")
        if (  # the MD5 is computed only when one was sent: a tuple would hash every body
            op in ("PutObject", "UploadPart")
            and md5 is not None
            and md5 != base64.b64encode(hashlib.md5(body).digest()).decode()
        ):
            message = "The Content-MD5 you specified did not match what we received."
            yield from self._error(start_response, rec, 400, "BadDigest", message, raw_path)
            return

        def start(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            rec.status = int(status.split()[0])
            kept = [(k, v) for k, v in response_headers if not (k.lower() == "x-amz-version-id" and v == "null")]
            return start_response(status, kept, exc_info)

        result = self.app(environ, start)
        try:
            yield from self._body(environ, rec, result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _initiation_times(self, rec: RequestRecord, data: bytes) -> bytes:
        """moto answers every upload's ``Initiated`` with one fixed date in 2010; S3 says when it was created.

        The time is kept per upload id when moto creates it and written over the fixed one (same length).
        """
        if not 200 <= rec.status < 300:
            return data
        if rec.operation == "CreateMultipartUpload":
            found = _UPLOAD_ID.search(data)
            if found:
                now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
                with self._lock:
                    self._initiated[found.group(1).decode()] = now
        elif rec.operation == "ListMultipartUploads":

            def fix(upload: re.Match[bytes]) -> bytes:
                found = _UPLOAD_ID.search(upload.group(0))
                with self._lock:
                    when = self._initiated.get(found.group(1).decode()) if found else None
                if when is None:
                    return upload.group(0)
                return _INITIATED.sub(f"<Initiated>{when}</Initiated>".encode(), upload.group(0))

            data = _UPLOAD.sub(fix, data)
        return data

    def _body(self, environ: dict[str, Any], rec: RequestRecord, result: Iterable[bytes]) -> Iterator[bytes]:
        data = self._initiation_times(rec, b"".join(result))
        is_object = rec.operation == "GetObject" and 200 <= rec.status < 300
        kinds = ("reset", "truncate", "flip")
        rule = self.faults.pick(kinds, rec.method, rec.operation, rec.key) if is_object else None
        if rule is not None and rule.kind == "flip" and data:
            buf = bytearray(data)
            buf[len(buf) // 2] ^= 0xFF
            data = bytes(buf)
        elif rule is not None:
            data = data[: len(data) // 2]
            rec.body_bytes_out = len(data)
            yield data
            _drop(environ, reset=rule.kind == "reset")
            raise ConnectionResetError(f"fault injection: {rule.kind} of the response body")
        if is_object:
            rec.body_bytes_out = len(data)
        yield data

    def _error(
        self, start_response: StartResponse, rec: RequestRecord, status: int, code: str, message: str, resource: str
    ) -> Iterator[bytes]:
        rec.status = status
        body = b"" if rec.method == "HEAD" else error_xml(code, message, resource)
        start_response(f"{status} {code}", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        yield body


class S3Service:
    """moto's S3 on 127.0.0.1, with a request log and fault injection (a :class:`LocalService`).

    :param check_auth: verify SigV4 signatures against ``ACCESS_KEY``/``SECRET_KEY`` (moto itself accepts any).
    """

    name = "s3"

    def __init__(self, port: int = 0, region: str = "us-east-1", *, check_auth: bool = True) -> None:
        from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app

        self.region = region
        self.middleware = S3Middleware(create_backend_app("s3"), {ACCESS_KEY: SECRET_KEY} if check_auth else None)
        handler = type("S3RequestHandler", (_Handler, MotoRequestHandler), {})
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, self.middleware, threaded=True, request_handler=handler
        )
        self._thread: threading.Thread | None = None
        self._tag = uuid.uuid4().hex[:8]
        self._count = 0

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def faults(self) -> Faults:
        return self.middleware.faults

    @property
    def requests(self) -> list[RequestRecord]:
        return self.middleware.requests

    def clear_log(self) -> None:
        with self.middleware._lock:
            self.middleware.requests.clear()

    def start(self) -> S3Service:
        self._thread = threading.Thread(target=self._server.serve_forever, name="S3Service", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> S3Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, secret: str | None = None) -> Any:
        """A boto3 S3 client for this server."""
        from airflow_multicloud.stores.s3_client import make_client

        return make_client(ACCESS_KEY, secret or SECRET_KEY, None, self.region, self.endpoint)

    def create_bucket(self, name: str | None = None) -> str:
        if name is None:
            self._count += 1
            name = f"test-{self._tag}-{self._count}"
        kwargs: dict[str, Any] = {}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        self.client().create_bucket(Bucket=name, **kwargs)
        return name

    def store(
        self, bucket: str, *, transfer: TransferConfig | None = None, secret: str | None = None, label: str = ""
    ) -> ObjectStore:
        from airflow_multicloud.stores.s3 import S3Store

        return S3Store.from_settings(
            bucket,
            access_key_id=ACCESS_KEY,
            secret_access_key=secret or SECRET_KEY,
            region=self.region,
            endpoint_url=self.endpoint,
            label=label or "s3-local",
            transfer=transfer,
        )

    def connection(self, conn_id: str) -> dict[str, Any]:
        # No "conn_id" key: Airflow 3.3 ignores an AIRFLOW_CONN_* JSON that has one ("isn't defined").
        return {
            "conn_type": "aws",
            "login": ACCESS_KEY,
            "password": SECRET_KEY,
            "extra": {"endpoint_url": self.endpoint, "region_name": self.region},
        }

    def corrupt(self, bucket: str, key: str, offset: int = 0) -> None:
        """Flip one byte of the object in moto's in-process backend, keeping its ETag and checksums."""
        from moto.s3.models import s3_backends

        partition, account = s3_backends.bucket_accounts[bucket]
        obj = s3_backends[account][partition].get_object(bucket, key)
        if obj is None:
            raise KeyError(f"{bucket}/{key}")
        etag = obj.etag  # computed and cached now, so the flipped bytes keep the old one
        data = bytearray(obj.value)
        data[offset] ^= 0xFF
        obj.value = bytes(data)  # type: ignore[misc]
        obj._etag = etag.strip('"')


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve moto S3 (with SigV4 and Content-MD5 checks) until killed.")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--no-auth", action="store_true", help="accept any signature")
    args = parser.parse_args(argv)
    service = S3Service(args.port, args.region, check_auth=not args.no_auth)
    print(f"S3 at {service.endpoint} (access key {ACCESS_KEY})", flush=True)
    try:
        service._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        service._server.server_close()


if __name__ == "__main__":
    main()
