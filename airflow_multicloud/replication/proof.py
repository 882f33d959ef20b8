"""Proving that the bytes read from a source are the source's bytes: a manifest's ``source_proof``.

Evidence the source holds independently of the read comes first: its native CRC64, an S3 whole-object checksum,
its MD5 ETag, or its multipart ETag recomputed with the source's own part layout. Each read is hashed once, with
the one algorithm that evidence needs. Where the source holds none, a second read must agree with the first (and
a local file must not change while it is read); ``source_verification="strict"`` refuses such objects instead.
"""

from __future__ import annotations

import base64
import hashlib
import queue
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import anycrc

from airflow_multicloud.checksums import Crc64
from airflow_multicloud.errors import IntegrityError, StoreError
from airflow_multicloud.replication.model import META_CRC64, SourceProof
from airflow_multicloud.stores.base import ObjectInfo, ObjectStore, is_md5_etag, normalize_etag

#: proofs that rest on nothing but our own reads of the source
SELF_PROVEN = frozenset({SourceProof.REREAD, SourceProof.LOCAL_STABLE})


class SourceVerification(StrEnum):
    AUTO = "auto"  # independent evidence, else a second read (local files: also unchanged while read)
    STRICT = "strict"  # independent evidence or the object fails


class UnprovenSourceError(StoreError):
    """``source_verification="strict"`` and the source holds nothing that proves a read of the object."""


class Hasher(Protocol):
    def update(self, data: bytes | memoryview) -> None: ...

    def result(self) -> str: ...


class _Hashlib:
    def __init__(self, name: str) -> None:
        self._h = hashlib.new(name)

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def result(self) -> str:
        return self._h.hexdigest()


class _S3Checksum:
    """An S3 checksum (CRC or SHA), as the base64 of its big-endian digest that S3 sends."""

    _CRCS = {"CRC64NVME": ("CRC64-NVME", 8), "CRC32C": ("CRC32-ISCSI", 4)}

    def __init__(self, algorithm: str) -> None:
        self._crc: Callable[[bytes | memoryview, int], int] | None = None
        self._value = 0
        self._hash = None
        if algorithm == "CRC32":
            self._crc, self._width = zlib.crc32, 4
        elif algorithm in self._CRCS:
            name, self._width = self._CRCS[algorithm]
            model = anycrc.Model(name)
            self._crc = lambda data, crc: int(model.calc(data, crc) if crc else model.calc(data))
        else:
            self._hash = hashlib.new(algorithm.lower())

    def update(self, data: bytes | memoryview) -> None:
        if self._hash is not None:
            self._hash.update(data)
        elif self._crc is not None and len(data):
            self._value = self._crc(data, self._value)

    def result(self) -> str:
        raw = self._hash.digest() if self._hash is not None else self._value.to_bytes(self._width, "big")
        return base64.b64encode(raw).decode()


class Crc64Hex:
    def __init__(self) -> None:
        self._crc = Crc64()

    def update(self, data: bytes | memoryview) -> None:
        self._crc.update(data)

    def result(self) -> str:
        return f"{self._crc.value:016x}"


class _PartsMd5:
    """The multipart ETag ``md5(md5(part 1) ... md5(part N))-N`` of a stream cut at the given part sizes."""

    def __init__(self, sizes: list[int]) -> None:
        self._sizes = sizes
        self._digests: list[bytes] = []
        self._md5 = hashlib.md5()
        self._left = sizes[0]
        self._extra = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while len(view):
            if len(self._digests) == len(self._sizes):
                self._extra += len(view)
                return
            n = min(self._left, len(view))
            self._md5.update(view[:n])
            view = view[n:]
            self._left -= n
            if self._left == 0:
                self._digests.append(self._md5.digest())
                self._md5 = hashlib.md5()
                nxt = len(self._digests)
                self._left = self._sizes[nxt] if nxt < len(self._sizes) else 0

    def result(self) -> str:
        if len(self._digests) != len(self._sizes) or self._extra:
            return "(bytes do not fit the part layout)"
        return f"{hashlib.md5(b''.join(self._digests)).hexdigest()}-{len(self._sizes)}"

    def part_md5s(self) -> list[bytes]:
        """The raw MD5 of each part hashed so far (all of them once the whole stream went through)."""
        return list(self._digests)


class BackgroundHasher:
    """Hashes in a thread of its own: the next chunk is read while the last one is hashed (hashlib releases the
    GIL), so proving a large object costs CPU time, not read throughput."""

    def __init__(self, hasher: Hasher, depth: int = 4) -> None:
        self._hasher = hasher
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="source-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            self._hasher.update(item)

    def update(self, data: bytes | memoryview) -> None:
        self._queue.put(data)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def result(self) -> str:
        self.close()
        return self._hasher.result()

    def part_md5s(self) -> list[bytes]:
        """The part MD5s of a multipart-ETag proof, once the stream is hashed ([] for any other hasher)."""
        self.close()
        return self._hasher.part_md5s() if isinstance(self._hasher, _PartsMd5) else []


@dataclass(frozen=True)
class Evidence:
    """What one read of an object must hash to, and how.

    :param proof: the manifest's ``source_proof`` when the read matches.
    :param expected: the value the read must hash to (None: a second read is the reference).
    :param hasher: makes the hasher whose ``result()`` is compared with ``expected``.
    :param what: names the evidence in messages.
    :param certain: False for an ETag that only looks like an MD5 (from a listing, encryption unknown): a mismatch
        then asks the source again instead of failing.
    :param md5: the object's MD5 as the source states it, for the manifest (None where its ETag is no MD5).
    :param crc64: the object's CRC64-XZ as the source states it, for the replica's metadata.
    :param layout: the sizes of the parts the source was uploaded in (multipart ETags only): a destination that
        writes the same parts gets the same ETag, and the part MD5s that prove the read prove its parts too.
    """

    proof: SourceProof
    expected: str | None
    hasher: Callable[[], Hasher]
    what: str
    certain: bool = True
    md5: str | None = None
    crc64: int | None = None
    layout: tuple[int, ...] | None = None

    @property
    def second_read(self) -> bool:
        return self.expected is None

    def check(self, uri: str, got: str) -> None:
        if self.expected is not None and got != self.expected:
            raise IntegrityError(f"{uri}: bytes read have {self.what} {got}, the source says {self.expected}")

    def require(self, uri: str, verification: SourceVerification) -> None:
        if verification is SourceVerification.STRICT and self.proof in SELF_PROVEN:
            raise UnprovenSourceError(
                f"{uri}: the source holds no checksum that proves a read of it (no MD5 ETag, CRC64, S3 checksum or "
                "multipart part layout), and source_verification='strict' refuses it. Re-upload the object with a "
                "checksum (e.g. `aws s3 cp --checksum-algorithm CRC64NVME`), or use source_verification='auto' to "
                "prove it by a second read"
            )


def _crc64(value: int, proof: SourceProof, what: str) -> Evidence:
    return Evidence(proof, f"{value:016x}", Crc64Hex, what, crc64=value)


def _md5_of(store: ObjectStore, info: ObjectInfo) -> str | None:
    """The object's MD5 where its ETag is one: single-part and MD5-based (per object where the store knows)."""
    md5_based = store.etag_is_md5 if info.etag_is_md5 is None else info.etag_is_md5
    return normalize_etag(info.etag) if md5_based and is_md5_etag(info.etag) else None


def listed_evidence(store: ObjectStore, info: ObjectInfo) -> Evidence | None:
    """Evidence from a listing alone (no request): a listed CRC64, or an ETag that looks like an MD5 (uncertain:
    a listing does not say whether the object is encrypted)."""
    if info.crc64 is not None:
        return _crc64(info.crc64, SourceProof.CRC64, "CRC64")
    md5 = normalize_etag(info.etag) if store.etag_is_md5 and is_md5_etag(info.etag) else None
    if md5 is not None:
        return Evidence(SourceProof.MD5_ETAG, md5, lambda: _Hashlib("md5"), "MD5", certain=False, md5=md5)
    return None


def evidence_for(store: ObjectStore, key: str, info: ObjectInfo, *, exact_layout: bool = False) -> Evidence:
    """The cheapest independent evidence ``info`` (from ``store.source_info``) offers, else a second read."""
    md5 = _md5_of(store, info)
    checksum = info.checksum if info.checksum_algorithm else None
    algorithm = info.checksum_algorithm or ""
    if info.crc64 is not None:
        return Evidence(SourceProof.CRC64, f"{info.crc64:016x}", Crc64Hex, "CRC64", md5=md5, crc64=info.crc64)
    if checksum and algorithm.startswith("CRC"):
        return Evidence(SourceProof.S3_CHECKSUM, checksum, lambda: _S3Checksum(algorithm), algorithm, md5=md5)
    if md5 is not None:
        return Evidence(SourceProof.MD5_ETAG, md5, lambda: _Hashlib("md5"), "MD5", md5=md5)
    if checksum:
        return Evidence(SourceProof.S3_CHECKSUM, checksum, lambda: _S3Checksum(algorithm), algorithm)
    md5_based = store.etag_is_md5 if info.etag_is_md5 is None else info.etag_is_md5
    sizes = store.part_sizes(key, info, exact=exact_layout) if md5_based and "-" in normalize_etag(info.etag) else None
    if sizes:
        etag = normalize_etag(info.etag)
        what = f"multipart ETag ({len(sizes)} parts)"
        return Evidence(SourceProof.MULTIPART_ETAG, etag, lambda: _PartsMd5(sizes), what, layout=tuple(sizes))
    recorded = info.metadata.get(META_CRC64)
    if recorded:
        try:
            return _crc64(int(recorded, 16), SourceProof.RECORDED_CRC64, "CRC64 (recorded by an earlier copy)")
        except ValueError:
            pass  # not ours after all: proven by a second read below
    if store.stable_reads:
        return Evidence(SourceProof.LOCAL_STABLE, None, Crc64Hex, "CRC64 of a second read")
    return Evidence(SourceProof.REREAD, None, Crc64Hex, "CRC64 of a second read")
