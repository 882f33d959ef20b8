"""The HTTP plumbing shared by the local COS and OSS servers: threading server, request log, body
streaming (Content-Length or chunked), fault injection, file responses with Range."""

from __future__ import annotations

import logging
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, unquote, urlsplit

from multicloud_testbed.disk import DiskBuckets
from multicloud_testbed.faults import Faults
from multicloud_testbed.locks import LockRegistry
from multicloud_testbed.synthetic import SyntheticSpec

log = logging.getLogger(__name__)


@dataclass
class RequestRecord:
    """One request as the server saw it. ``body_bytes_out`` counts object bytes sent (GET bodies)."""

    method: str
    operation: str
    bucket: str
    key: str
    query: dict[str, str]
    status: int
    bytes_in: int
    body_bytes_out: int
    range: str | None


class ChunkedReader:
    """Reads a ``Transfer-Encoding: chunked`` body as a plain stream."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.left = 0
        self.done = False

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while not self.done and (n < 0 or len(out) < n):
            if self.left == 0:
                line = self.raw.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.raw.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    self.done = True
                    break
                self.left = size
            want = self.left if n < 0 else min(self.left, n - len(out))
            chunk = self.raw.read(want)
            if not chunk:
                raise ConnectionError("chunked body ended early")
            out += chunk
            self.left -= len(chunk)
            if self.left == 0:
                self.raw.readline()
        return bytes(out)


class CountingReader:
    """Wraps the request body; may reset the connection half-way (fault ``reset_request``)."""

    def __init__(self, raw: BinaryIO, reset_after: int | None, flip_at: int | None = None) -> None:
        self.raw = raw
        self.count = 0
        self.reset_after = reset_after
        self.flip_at = flip_at

    def read(self, n: int = -1) -> bytes:
        if self.reset_after is not None and self.count >= self.reset_after:
            raise ConnectionResetError("fault injection: connection reset while reading the request body")
        if self.reset_after is not None and n > 0:
            n = min(n, max(self.reset_after - self.count, 1))
        data = self.raw.read(n)
        if self.flip_at is not None and self.count <= self.flip_at < self.count + len(data):
            buf = bytearray(data)
            buf[self.flip_at - self.count] ^= 0xFF
            data = bytes(buf)
        self.count += len(data)
        return data


class AbortConnection(Exception):
    """Raised by a handler to drop the connection without an answer."""


class ObjectHandler(BaseHTTPRequestHandler):
    """Base request handler: subclasses set ``operation``/``bucket``/``key`` in ``route`` and answer."""

    protocol_version = "HTTP/1.1"
    server: LocalObjectServer
    error_content_type = "application/xml"
    server_version = "LocalObjectServer"

    # set per request
    operation = ""
    bucket = ""
    key = ""
    query: dict[str, str]
    body_bytes_out = 0
    status_sent = 0
    body: CountingReader | None = None

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    # ---- to be provided by subclasses -------------------------------------------------------------
    def route(self) -> Callable[[], None]:
        """Parse the request (set operation, bucket, key), check its signature, and return the handler."""
        raise NotImplementedError

    def send_error_response(self, status: int, code: str, message: str, resource: str = "") -> None:
        raise NotImplementedError

    # ---- dispatch ----------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        self.raw_path = split.path
        self.url_path = unquote(split.path)
        self.query = dict(parse_qsl(split.query, keep_blank_values=True))
        self.raw_query = split.query
        self.operation = ""
        self.bucket = ""
        self.key = ""
        self.body_bytes_out = 0
        self.status_sent = 0
        self.body = None
        # logged on arrival, completed below: a client that got its answer always finds its request in the log
        rec = RequestRecord(self.command, "", "", "", self.query, 0, 0, 0, self.headers.get("Range"))
        self.server.record(rec)
        self._rec = rec
        try:
            handler = self.route()
            rec.operation, rec.bucket, rec.key = self.operation, self.bucket, self.key
            self.body = self._make_body()
            if not self._inject_before():
                handler()
        except AbortConnection:
            self.close_connection = True
        except (TimeoutError, ConnectionError) as exc:
            log.debug("connection dropped: %s", exc)
            self.close_connection = True
        finally:
            self._drain()
            rec.operation, rec.bucket, rec.key = self.operation, self.bucket, self.key
            rec.status, rec.bytes_in = self.status_sent, self.body.count if self.body else 0
            rec.body_bytes_out = self.body_bytes_out

    def send_response(self, code: int, message: str | None = None) -> None:
        self.status_sent = code
        rec = getattr(self, "_rec", None)  # absent when the request line itself was malformed
        if rec is not None:
            rec.status, rec.operation, rec.bucket, rec.key = code, self.operation, self.bucket, self.key
        super().send_response(code, message)

    def _make_body(self) -> CountingReader:
        rule = self.server.faults.pick(("reset_request",), self.command, self.operation, self.key)
        raw: BinaryIO
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = ChunkedReader(self.rfile)  # type: ignore[arg-type,assignment]
            self._length = -1
        else:
            raw = self.rfile  # type: ignore[assignment]
            self._length = int(self.headers.get("Content-Length") or 0)
        reset_after = None
        if rule is not None:
            reset_after = max(self._length // 2, 1)
        flip_at = None
        if self._length > 0 and self.command in ("PUT", "POST"):
            flip = self.server.faults.pick(("flip_request",), self.command, self.operation, self.key)
            flip_at = self._length // 2 if flip is not None else None
        return CountingReader(raw, reset_after, flip_at)

    def _drain(self) -> None:
        """Read what is left of the request body so keep-alive stays in sync."""
        if self.body is None or self.close_connection:
            return
        try:
            if self._length >= 0:
                left = self._length - self.body.count
                while left > 0:
                    chunk = self.body.raw.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    left -= len(chunk)
            else:
                while self.body.raw.read(1 << 20):
                    pass
        except (OSError, ValueError):
            self.close_connection = True

    @property
    def body_length(self) -> int:
        """Content-Length of the request body, -1 when chunked."""
        return self._length

    def _inject_before(self) -> bool:
        faults = self.server.faults
        rule = faults.pick(("latency",), self.command, self.operation, self.key)
        if rule is not None:
            time.sleep(rule.latency)
        rule = faults.pick(("status",), self.command, self.operation, self.key)
        if rule is not None:
            self.send_error_response(rule.status, rule.code, "fault injection: " + rule.code)
            return True
        return False

    # ---- responses ---------------------------------------------------------------------------------
    def send_bytes(
        self, status: int, body: bytes, headers: dict[str, str] | None = None, content_type: str = "application/xml"
    ) -> None:
        self.send_response(status)
        self.status_sent = status
        hdrs = {"Content-Type": content_type, **(headers or {})}
        for name, value in hdrs.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Date", formatdate(usegmt=True))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_object(self, status: int, f: BinaryIO, start: int, length: int, headers: dict[str, str]) -> None:
        """Stream ``length`` bytes of ``f`` from ``start``, applying response-body faults."""
        faults = self.server.faults
        rule = faults.pick(("reset", "truncate", "flip"), self.command, self.operation, self.key)
        self.send_response(status)
        self.status_sent = status
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.send_header("Date", formatdate(usegmt=True))
        self.end_headers()
        if self.command == "HEAD":
            return
        stop_at = length // 2 if rule is not None and rule.kind in ("reset", "truncate") else length
        flip_at = length // 2 if rule is not None and rule.kind == "flip" and length else -1
        f.seek(start)
        sent = 0
        while sent < stop_at:
            chunk = f.read(min(1 << 20, stop_at - sent))
            if not chunk:
                break
            if sent <= flip_at < sent + len(chunk):
                buf = bytearray(chunk)
                buf[flip_at - sent] ^= 0xFF
                chunk = bytes(buf)
            self.body_bytes_out += len(chunk)
            self._rec.body_bytes_out = self.body_bytes_out
            self.wfile.write(chunk)
            sent += len(chunk)
        if stop_at < length:
            self.wfile.flush()
            if rule is not None and rule.kind == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            raise AbortConnection


class LocalObjectServer(ThreadingHTTPServer):
    """A threaded HTTP server over disk-backed buckets, with a request log and fault injection.

    :param handler: the protocol's request handler class.
    :param root: folder for the buckets (a temporary one when None).
    :param credentials: access key id -> secret the server accepts.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        handler: type[ObjectHandler],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        root: str | Path | None = None,
        credentials: dict[str, str] | None = None,
    ) -> None:
        super().__init__((host, port), handler)
        self._tmpdir = tempfile.TemporaryDirectory(prefix="multicloud-") if root is None else None
        self.root = Path(root) if root is not None else Path(self._tmpdir.name)  # type: ignore[union-attr]
        self.buckets = DiskBuckets(self.root)
        self.locks = LockRegistry(self.root)
        self.credentials = dict(credentials or {})
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def handle_error(self, request: object, client_address: object) -> None:
        # clients drop idle keep-alive connections with a reset: not a server error worth a traceback
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            log.debug("connection from %s dropped", client_address)
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def host(self) -> str:
        return str(self.server_address[0])

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def record(self, rec: RequestRecord) -> None:
        with self._log_lock:
            self.requests.append(rec)

    def clear_log(self) -> None:
        with self._log_lock:
            self.requests.clear()

    def start(self) -> LocalObjectServer:
        self._thread = threading.Thread(target=self.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()

    def __enter__(self) -> LocalObjectServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DiskBackedService:
    """What the local COS and OSS services share: lifecycle, request log, faults and corruption of one server."""

    name = ""
    server: LocalObjectServer
    region = ""

    def _attach(self, server: LocalObjectServer) -> None:
        self.server = server
        self.endpoint: str = server.endpoint
        self.faults: Faults = server.faults
        self.requests: list[RequestRecord] = server.requests

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.endpoint!r}, region={self.region!r})"

    def start(self) -> Any:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear_log(self) -> None:
        self.server.clear_log()

    def corrupt(self, bucket: str, key: str, offset: int = 0) -> None:
        """Flip one stored byte without updating checksums."""
        self.server.buckets.corrupt(bucket, key, offset)

    def create_bucket(self, name: str | None = None) -> str:
        raise NotImplementedError

    def synthetic_bucket(self, spec: SyntheticSpec, name: str | None = None) -> str:
        """A new bucket that also holds the generated objects of ``spec`` (see :mod:`.synthetic`); its name."""
        bucket = self.create_bucket(name)
        self.server.buckets.declare_synthetic(bucket, spec)
        return bucket
