"""The one interface every store implements. No Airflow and no SDK imports here.

A store module knows one SDK and implements the primitives marked abstract; ``write`` (streaming,
multipart above a threshold, parallel parts, abort on failure, resume of an interrupted upload) is
shared, so every store behaves the same way.
"""

from __future__ import annotations

import base64
import builtins
import collections
import hashlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from airflow_multicloud.checksums import Crc64, crc64
from airflow_multicloud.errors import IntegrityError, StoreError
from airflow_multicloud.stores.retention import NO_RETENTION, ObjectRetention, RetentionPolicy, RetentionStatus

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: HTTP connections a store's client keeps: a run has up to 32 objects, or 2 objects x 4 parts, in flight per store
CLIENT_POOL_SIZE = 64
#: an abort is idempotent: tried this many times, with this backoff (seconds, doubled each time), before giving up
ABORT_ATTEMPTS = 4
ABORT_BACKOFF = 0.2


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or a HEAD tells about one object.

    :param key: the full key in the bucket.
    :param crc64: the store's own whole-object CRC64-XZ (COS, OSS), or None where it gives none.
    :param metadata: user metadata, lower-case names without the store's prefix (from ``head`` only).
    :param checksum_algorithm: the algorithm of a whole-object checksum the store keeps besides ``crc64`` (S3:
        ``CRC64NVME``, ``CRC32``, ``CRC32C``, ``SHA1``, ``SHA256``), from ``source_info`` only.
    :param checksum: that checksum, base64 as the store sends it (never a per-part "composite" one).
    :param etag_is_md5: whether this object's ETag is MD5-based (the MD5 of its bytes, or of its parts' MD5s
        plus ``-N``); None: as the store's ``etag_is_md5`` says. Encrypted S3 objects (SSE-KMS, SSE-C) have other
        ETags.
    """

    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None
    crc64: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    checksum_algorithm: str | None = None
    checksum: str | None = None
    etag_is_md5: bool | None = None


@dataclass(frozen=True)
class PartInfo:
    number: int
    size: int
    etag: str


@dataclass(frozen=True)
class UploadInfo:
    key: str
    upload_id: str
    initiated: datetime | None = None


@dataclass(frozen=True)
class WriteResult:
    """The outcome of :meth:`ObjectStore.write`.

    :param crc64: CRC64-XZ of the bytes this process sent, computed on the stream.
    :param md5: hex MD5 of the whole stream.
    :param expected_etag: the ETag an S3-style store computes from the bytes sent: their MD5 for a single PUT,
        the MD5 of the part MD5s plus ``-N`` for N parts.
    :param parts: number of parts (0 for a single PUT); ``parts_reused`` of them came from an earlier attempt.
    """

    key: str
    size: int
    etag: str
    crc64: int
    md5: str
    expected_etag: str = ""
    parts: int = 0
    parts_reused: int = 0


@dataclass(frozen=True)
class TransferConfig:
    """How ``write`` splits and parallelises an upload.

    :param multipart_threshold: objects of this many bytes or more go multipart.
    :param part_size: size of each part but the last (S3, COS and OSS need >= 5 MiB, except the last part).
    :param max_concurrency: parts in flight at once per object; memory is about (max_concurrency + 1) x part_size.
    """

    # measured in bench/: 8 MiB parts keep a copy's memory low and the parts in flight many; objects under
    # 16 MiB are one PUT, read whole
    multipart_threshold: int = 16 * MiB
    part_size: int = 8 * MiB
    max_concurrency: int = 4

    def __post_init__(self) -> None:
        if self.part_size < 1 or self.multipart_threshold < 1 or self.max_concurrency < 1:
            raise ValueError(f"TransferConfig values must be positive, got {self}")


DEFAULT_TRANSFER = TransferConfig()


@dataclass(frozen=True)
class PartLayout:
    """The parts a multipart upload is cut into, instead of ``transfer.part_size`` ones.

    :param sizes: each part's size, in order (they must add up to the stream's length).
    :param md5s: where given, the raw MD5 of each part as the caller computed it from the same bytes, complete
        once the stream has ended: each stored part's ETag must equal it before the upload completes, which proves
        the part without a hash of the store's own (see :meth:`ObjectStore.upload_part_by_md5`).
    """

    sizes: Sequence[int]
    md5s: Callable[[], Sequence[bytes]] | None = None


def md5_b64(data: bytes | memoryview, md5: bytes | None = None) -> str:
    """Content-MD5 header value (from ``md5``, the raw digest, when known): the store rejects changed bytes."""
    return base64.b64encode(md5 or hashlib.md5(data).digest()).decode()


def check_sent_part(uri: str, what: str, data: bytes, reported_crc64: int | None, etag: str) -> str:
    """Raise IntegrityError unless the store's answer to an upload proves it holds exactly ``data``; return ``etag``.

    COS and OSS answer every PUT and UploadPart with the CRC64 of the bytes they stored; comparing it costs one
    CRC64 pass (GB/s) where a Content-MD5 costs an MD5 pass on both ends. A store that sends no CRC64 is held to
    its ETag instead, the MD5 of what it stored (one MD5 pass here, only then).
    """
    if reported_crc64 is not None:
        sent = crc64(data)
        if reported_crc64 != sent:
            raise IntegrityError(
                f"{uri}: {what} stored with CRC64 {reported_crc64:016x}, the bytes sent have {sent:016x}"
            )
        return etag
    digest = hashlib.md5(data).hexdigest()
    if normalize_etag(etag) != digest:
        raise IntegrityError(f"{uri}: {what} stored with ETag {normalize_etag(etag)}, the bytes sent have MD5 {digest}")
    return etag


class _Rechunker:
    """Turns an iterable of byte chunks of any size into blocks of exactly ``size`` bytes (last one shorter).

    Copying is the engine's main cost per byte after hashing (about 1 GB/s here, with the GIL held): a chunk that
    already is a whole block is passed on as it is (the copy engine reads its source in part-sized chunks, so
    parts reach every destination without a copy); otherwise the pieces of a block are joined once.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._pending: collections.deque[bytes | memoryview] = collections.deque()
        self._held = 0
        self._done = False

    def take(self, size: int) -> bytes:
        while self._held < size and not self._done:
            try:
                chunk = next(self._it)
            except StopIteration:
                self._done = True
                break
            n = len(chunk)  # a chunk that is not bytes-like (None) is a caller's bug: TypeError, nothing written
            if n:
                self._pending.append(chunk)
                self._held += n
        pieces: builtins.list[bytes | memoryview] = []
        need = size
        while need and self._pending:
            piece = self._pending.popleft()
            if len(piece) > need:
                view = memoryview(piece)
                self._pending.appendleft(view[need:])
                piece = view[:need]
            pieces.append(piece)
            need -= len(piece)
        self._held -= size - need
        if len(pieces) == 1 and isinstance(pieces[0], bytes):
            return pieces[0]
        return b"".join(pieces)


class ObjectStore(ABC):
    """One bucket (or local root) of one store.

    :param bucket: bucket name (``name-appid`` for COS; the root folder for local files).
    :param label: how errors name the credentials, e.g. the Airflow connection id; never a secret.
    :param transfer: multipart settings for ``write``.
    """

    scheme: ClassVar[str]
    #: the store keeps a whole-object CRC64-XZ it reports on HEAD (COS, OSS)
    native_crc64: ClassVar[bool] = False
    #: ETags are MD5 of the bytes (single PUT) or MD5 of part MD5s + "-N" (multipart), for unencrypted objects
    etag_is_md5: ClassVar[bool] = True
    #: the service's key rules, checked before any request (:meth:`key_problem`): longest key in UTF-8 bytes,
    #: characters a key must not start with, characters it must not contain
    max_key_bytes: ClassVar[int | None] = None
    key_bad_first: ClassVar[str] = ""
    key_bad_chars: ClassVar[str] = ""
    #: ``read`` itself fails (IntegrityError) when the object changes while it is read (local files)
    stable_reads: ClassVar[bool] = False

    def __init__(self, bucket: str, *, label: str = "", transfer: TransferConfig | None = None) -> None:
        self.bucket = bucket
        self.label = label or f"{self.scheme} (no connection id)"
        self.transfer = transfer or TransferConfig()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bucket={self.bucket!r}, label={self.label!r})"

    def uri(self, key: str = "") -> str:
        return f"{self.scheme}://{self.bucket}/{key}"

    @property
    def endpoint_id(self) -> str:
        """Identifies the service behind this store: two stores with the same id can copy server-side."""
        return self.scheme

    def key_problem(self, key: str) -> str | None:
        """Why this store would refuse ``key`` (None: it can hold it), decided without a request."""
        if not key:
            return "the key is empty"
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError:
            return "the key is not valid UTF-8 text"
        if self.max_key_bytes is not None and size > self.max_key_bytes:
            return f"the key is {size} bytes of UTF-8; {self.scheme} keys are at most {self.max_key_bytes} bytes"
        if key[0] in self.key_bad_first:
            return f"{self.scheme} keys must not start with {key[0]!r}"
        bad = sorted({c for c in key if c in self.key_bad_chars})
        if bad:
            names = ", ".join(f"U+{ord(c):04X}" for c in bad)
            return f"{self.scheme} keys must not contain the control character(s) {names}"
        return None

    # ---- reading ---------------------------------------------------------------------------------
    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order, fetched page by page as consumed."""

    def list_after(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        """:meth:`list` from the first key greater than ``start_after``; stores whose API takes a marker start
        the listing there instead of skipping (see :func:`~airflow_multicloud.stores.listing.list_parallel`)."""
        return (info for info in self.list(prefix) if info.key > start_after)

    def list_noting(self, prefix: str, unlisted: builtins.list[str]) -> Iterator[ObjectInfo]:
        """:meth:`list`, also appending to ``unlisted`` a line (name and reason) for each entry seen but not
        listed; only local folders have such entries (symbolic links, special files)."""
        return self.list(prefix)

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Size, etag, native checksum and user metadata of one object; ObjectNotFoundError if absent."""

    @abstractmethod
    def read(self, key: str, start: int = 0, end: int | None = None, chunk_size: int = MiB) -> Iterator[bytes]:
        """Stream bytes ``[start, end)`` of an object (``end=None``: to the end)."""

    def source_info(self, key: str) -> ObjectInfo:
        """``head`` plus what the store keeps that proves a read of the object: whole-object checksums and
        whether its ETag is MD5-based (stores whose HEAD tells all of it already keep this default)."""
        return self.head(key)

    def part_sizes(self, key: str, info: ObjectInfo, *, exact: bool = False) -> builtins.list[int] | None:
        """The sizes of the parts the object was uploaded in, to recompute its multipart ETag from a read; None
        where the store cannot tell. ``exact=False`` may assume equal parts but the last (as every common tool
        uploads); ``exact=True`` asks for each part's size."""
        return None

    # ---- changing --------------------------------------------------------------------------------
    @abstractmethod
    def copy(self, src_key: str, dst_key: str, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Server-side copy within this bucket's service (source may be ``bucket/key`` of another bucket via
        :meth:`copy_from`). ``metadata=None`` keeps the source's user metadata; a dict replaces it."""

    def copy_from(
        self, src: ObjectStore, src_key: str, dst_key: str, *, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        """Server-side copy from another bucket of the same service; stores override it where possible."""
        if src is self or (src.endpoint_id == self.endpoint_id and src.bucket == self.bucket):
            return self.copy(src_key, dst_key, metadata=metadata)
        raise StoreError(f"{self!r} cannot copy server-side from {src!r}")

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object; deleting an absent object is not an error."""

    # ---- write-once retention (stores that can hold it override these) -----------------------------
    #: set by the engine for a run with ``retention=``: every object this store writes then carries it
    retention: RetentionPolicy | None = None

    def retention_status(self) -> RetentionStatus:
        """Whether this bucket can hold write-once retention, and its default or bucket-wide period."""
        return RetentionStatus(False, remedy=f"{self.scheme} storage has no write-once retention")

    def object_retention(self, key: str) -> ObjectRetention:
        """The retention ``key`` carries now (one request where the store has it per object)."""
        return NO_RETENTION

    # ---- multipart primitives ----------------------------------------------------------------------
    @abstractmethod
    def put_object(
        self,
        key: str,
        data: bytes,
        *,
        metadata: Mapping[str, str],
        content_type: str | None = None,
        md5: bytes | None = None,
    ) -> str:
        """Single PUT; returns the ETag. The store must refuse bytes that changed on the way *before* they replace
        anything (Content-MD5, or a signed payload hash): a PUT overwrites. ``md5``: the raw MD5 of ``data`` where
        the caller has it already."""

    @abstractmethod
    def create_multipart(self, key: str, *, metadata: Mapping[str, str], content_type: str | None = None) -> str:
        """Start a multipart upload; returns the upload id."""

    @abstractmethod
    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        """Upload one part (1-based); returns its ETag. A part is invisible until the upload completes, so the
        proof may also come after it is stored: the CRC64 the store answers with (:func:`check_sent_part`)."""

    def upload_part_by_md5(self, key: str, upload_id: str, number: int, data: bytes) -> tuple[str, bool]:
        """:meth:`upload_part` for a part whose MD5 the caller has (from hashing the same bytes for another proof):
        a store whose own proof of a part is a hash of each request (S3's signed payload SHA-256 or Content-MD5)
        may leave it out, and the caller then compares the returned ETag with that MD5 before the upload completes.
        Returns the ETag and whether the store proved the part itself (no comparison needed)."""
        return self.upload_part(key, upload_id, number, data), True

    @abstractmethod
    def list_parts(self, key: str, upload_id: str) -> builtins.list[PartInfo]:
        """Parts already stored for an upload, in part-number order (all pages)."""

    @abstractmethod
    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[PartInfo]) -> str:
        """Assemble the parts; returns the object's ETag."""

    @abstractmethod
    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort an upload and free its parts."""

    @abstractmethod
    def list_multipart_uploads(self, prefix: str = "") -> Iterator[UploadInfo]:
        """Unfinished uploads under ``prefix``."""

    # ---- the shared streaming writer ---------------------------------------------------------------
    def write(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        resume: bool = False,
        whole_md5: bool = True,
        layout: PartLayout | None = None,
    ) -> WriteResult:
        """Write an object from a stream of byte chunks, in bounded memory.

        Below ``transfer.multipart_threshold`` bytes this is one PUT; above, a multipart upload with up to
        ``transfer.max_concurrency`` parts in flight. On any failure the multipart upload is aborted, so no
        partial object and no orphaned parts remain - unless ``resume=True``, which keeps the upload so a
        later ``write(..., resume=True)`` of the same bytes re-sends only the parts not yet stored (a
        stored part is reused only when its size and MD5 match the new bytes). ``layout`` cuts the parts (the
        source's own, say) instead of ``transfer.part_size``.
        """
        meta = dict(metadata or {})
        crc = Crc64()
        # each MD5 pass costs about as much CPU as moving the bytes; a multipart object's whole MD5 matches no
        # ETag, so a caller that has it already (or does not need it) can skip it
        md5 = hashlib.md5() if whole_md5 else None
        threshold = max(self.transfer.multipart_threshold, 1)
        # Read ahead the chunks as they come, up to the threshold: if the stream ends first they are joined once
        # into the single PUT's body (a body given as one chunk is sent as it is); else they are cut into the
        # first parts of a multipart upload.
        stream = iter(chunks)
        head: collections.deque[bytes] = collections.deque()
        held = 0
        for chunk in stream:
            head.append(chunk)
            held += len(chunk)  # a chunk that is not bytes-like (None) is a caller's bug: TypeError, nothing written
            if held >= threshold:
                break
        if held < threshold:
            first = head[0] if len(head) == 1 and isinstance(head[0], bytes) else b"".join(head)
            head.clear()
            crc.update(first)
            raw = hashlib.md5(first).digest()
            etag = self.put_object(key, first, metadata=meta, content_type=content_type, md5=raw)
            return WriteResult(key, len(first), etag, crc.value, raw.hex(), raw.hex())
        source = _Rechunker(_drained(head, stream))
        return self._write_multipart(key, source, crc, md5, meta, content_type, resume, layout)

    def _find_resumable(self, key: str) -> tuple[str, dict[int, PartInfo]] | None:
        uploads = sorted(
            (u for u in self.list_multipart_uploads(key) if u.key == key),
            key=lambda u: u.initiated or datetime.min,
        )
        if not uploads:
            return None
        upload = uploads[-1]
        return upload.upload_id, {p.number: p for p in self.list_parts(key, upload.upload_id)}

    def _write_multipart(
        self,
        key: str,
        source: _Rechunker,
        crc: Crc64,
        md5: hashlib._Hash | None,
        meta: dict[str, str],
        content_type: str | None,
        resume: bool,
        layout: PartLayout | None = None,
    ) -> WriteResult:
        sizes = _part_sizes(layout, self.transfer.part_size)
        by_md5 = layout is not None and layout.md5s is not None
        existing: dict[int, PartInfo] = {}
        found = self._find_resumable(key) if resume else None
        if found:
            upload_id, existing = found
            log.info("resuming upload of %s: %d parts already stored", self.uri(key), len(existing))
        else:
            upload_id = self.create_multipart(key, metadata=meta, content_type=content_type)
        done: builtins.list[PartInfo] = []
        reused = 0
        size = 0
        in_flight: set[Future[PartInfo]] = set()
        pool = ThreadPoolExecutor(max_workers=self.transfer.max_concurrency, thread_name_prefix="part")

        unproven: set[int] = set()  # parts sent without the store's own proof: their ETags must match the MD5s

        def send(number: int, data: bytes) -> PartInfo:
            return self._send_part(key, upload_id, number, data, unproven if by_md5 else None)

        try:
            number = 0
            while True:
                part_size = next(sizes, 0)
                data = source.take(part_size) if part_size else b""
                if not data and number > 0:
                    break
                number += 1
                crc.update(data)
                if md5 is not None:
                    md5.update(data)
                size += len(data)
                old = existing.get(number)
                if old is not None and old.size == len(data) and _same_md5(old.etag, data):
                    done.append(old)
                    reused += 1
                else:
                    in_flight = _settle(in_flight, done, self.transfer.max_concurrency - 1)
                    in_flight.add(pool.submit(send, number, data))
                if len(data) < part_size:
                    break
            in_flight = _settle(in_flight, done, 0)
            done.sort(key=lambda p: p.number)
            if layout is not None:
                _check_layout(self.uri(key), layout, done, source, unproven)
            etag = self.complete_multipart(key, upload_id, done)
        except BaseException:
            # parts not started yet are dropped; those on the wire end with their request (SDK timeouts bound it)
            pool.shutdown(wait=True, cancel_futures=True)
            if not resume:
                self.abort_quietly(key, upload_id)
            raise
        pool.shutdown(wait=True)
        composite = hashlib.md5(b"".join(bytes.fromhex(_md5_of_part(p)) for p in done)).hexdigest()
        whole = md5.hexdigest() if md5 is not None else ""
        return WriteResult(key, size, etag, crc.value, whole, f"{composite}-{len(done)}", len(done), reused)

    def _send_part(self, key: str, upload_id: str, number: int, data: bytes, unproven: set[int] | None) -> PartInfo:
        """Upload one part; with ``unproven`` (the caller has its MD5), by MD5, noting it there if the store did not
        prove it itself."""
        if unproven is None:
            return PartInfo(number, len(data), self.upload_part(key, upload_id, number, data))
        etag, proven = self.upload_part_by_md5(key, upload_id, number, data)
        if not proven:
            unproven.add(number)
        return PartInfo(number, len(data), etag)

    def abort_quietly(self, key: str, upload_id: str) -> bool:
        """Abort an upload, trying again while the store's answer says it is worth it; True once it is gone.

        Never raises: the error that made the caller give up matters more, and this one is logged.
        """
        for attempt in range(1, ABORT_ATTEMPTS + 1):
            try:
                self.abort_multipart(key, upload_id)
                return True
            except Exception as exc:
                worth_retrying = exc.retryable if isinstance(exc, StoreError) else isinstance(exc, OSError)
                if attempt == ABORT_ATTEMPTS or not worth_retrying:
                    log.error("could not abort upload %s of %s, left unfinished: %s", upload_id, self.uri(key), exc)
                    return False
                time.sleep(ABORT_BACKOFF * 2 ** (attempt - 1))
        return False


def _part_sizes(layout: PartLayout | None, part_size: int) -> Iterator[int]:
    """The size of each next part to cut: a layout's, else ``part_size`` until the stream ends."""
    if layout is not None:
        yield from layout.sizes
        return
    while True:
        yield part_size


def _check_layout(uri: str, layout: PartLayout, done: Sequence[PartInfo], rest: _Rechunker, unproven: set[int]) -> None:
    """Raise IntegrityError unless the parts stored are the layout's, and each part in ``unproven`` (sent without
    the store's own proof) has the ETag of the MD5 the layout gives."""
    sizes = [p.size for p in done]
    if sizes != list(layout.sizes) or rest.take(1):
        raise IntegrityError(f"{uri}: the bytes written do not fit the {len(layout.sizes)} parts of their layout")
    if unproven and layout.md5s is not None:
        md5s = layout.md5s()
        if len(md5s) != len(done):
            raise IntegrityError(f"{uri}: the bytes read were not all hashed; the parts cannot be proven")
        for part, md5 in zip(done, md5s, strict=True):
            if part.number not in unproven:
                continue
            stored, read = _md5_of_part(part), md5.hex()
            if stored != read:
                raise IntegrityError(f"{uri}: part {part.number} stored with ETag {stored}, its bytes have MD5 {read}")


def _drained(head: collections.deque[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    """``head``'s chunks, each let go once taken, then ``rest``'s."""
    while head:
        yield head.popleft()
    yield from rest


def _settle(in_flight: set[Future[PartInfo]], done: builtins.list[PartInfo], room: int) -> set[Future[PartInfo]]:
    """Collect the finished parts into ``done`` and wait until at most ``room`` remain in flight.

    A failed part raises here as soon as it is seen, so the caller stops reading, drops the parts not yet sent
    and aborts, instead of waiting for the others.
    """
    while True:
        finished = {f for f in in_flight if f.done()}
        for f in finished:
            done.append(f.result())
        in_flight = in_flight - finished
        if len(in_flight) <= room:
            return in_flight
        wait(in_flight, return_when=FIRST_COMPLETED)


def _same_md5(etag: str, data: bytes) -> bool:
    return etag.strip('"').lower() == hashlib.md5(data).hexdigest()


def _md5_of_part(part: PartInfo) -> str:
    """A part's ETag is the MD5 of its bytes on S3, COS and OSS, as the store computed it."""
    return part.etag.strip('"').lower()


def normalize_etag(etag: str | None) -> str:
    return (etag or "").strip('"').lower()


def is_md5_etag(etag: str | None) -> bool:
    """True when an ETag is the plain MD5 of the object's bytes (a single-part, unencrypted upload)."""
    e = normalize_etag(etag)
    return len(e) == 32 and all(c in "0123456789abcdef" for c in e)


def check_integrity(store: ObjectStore, key: str, sent: WriteResult, reported: ObjectInfo) -> None:
    """Raise IntegrityError when what the store reports differs from what was sent."""
    if reported.size != sent.size:
        raise IntegrityError(f"{store.uri(key)}: stored {reported.size} bytes, sent {sent.size}")
    if reported.crc64 is not None and reported.crc64 != sent.crc64:
        raise IntegrityError(
            f"{store.uri(key)}: store reports CRC64 {reported.crc64:016x}, sent bytes have {sent.crc64:016x}"
        )


@dataclass(frozen=True)
class WriteProof:
    """How a write was proven (``evidence``), and the stored object's modification time where the proof's HEAD
    told it (None: no HEAD was needed)."""

    evidence: builtins.list[str]
    last_modified: datetime | None = None


def verify_write(store: ObjectStore, sent: WriteResult) -> builtins.list[str]:
    """Prove that what the store keeps is what was sent; return the evidence used, raise IntegrityError if not."""
    return prove_write(store, sent).evidence


def prove_write(store: ObjectStore, sent: WriteResult) -> WriteProof:
    """:func:`verify_write`, also returning the modification time the HEAD (if any) reported.

    The ETag a store returns is computed by the store from the bytes it received; where it is MD5-based it is
    compared with what was sent, at no extra request. Stores with a native CRC64 are also asked (one HEAD).
    """
    evidence: builtins.list[str] = []
    modified = None
    etag = normalize_etag(sent.etag)
    if etag and (is_md5_etag(etag) or "-" in etag) and store.etag_is_md5:
        if etag != sent.expected_etag:
            raise IntegrityError(
                f"{store.uri(sent.key)}: store computed ETag {etag}, the bytes sent give {sent.expected_etag}"
            )
        evidence.append("etag-md5")
    if store.native_crc64:
        reported = store.head(sent.key)
        check_integrity(store, sent.key, sent, reported)
        modified = reported.last_modified
        if reported.crc64 is not None:
            evidence.append("crc64")
    if not evidence:
        raise IntegrityError(f"{store.uri(sent.key)}: the store gave nothing to verify the written bytes against")
    return WriteProof(evidence, modified)
