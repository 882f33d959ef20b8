"""Synthetic buckets for the local COS and OSS servers: a million objects that cost no disk.

A synthetic bucket answers HEAD, GET and listings from a generator: object ``i`` of ``count`` is named
``prefix + i (zero-padded) + suffix``, so the names sort by index and a marker is found by binary search, and its
bytes are derived from the seed and the name's variable part (not the prefix), so a destination declared with the
same count, size and seed under another prefix holds byte-identical objects. ETag (MD5) and CRC64 are computed
from those bytes when asked, which is cheap for the small objects this is made for.

Writes and deletes go to the disk-backed bucket underneath (see :class:`~multicloud_testbed.disk.DiskBuckets`):
a written object hides the generated one of that name, a deleted generated one stays deleted.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, overload

from airflow_multicloud.checksums import crc64
from airflow_multicloud.replication.model import META_CRC64, META_SOURCE_ETAG, META_SOURCE_SIZE

if TYPE_CHECKING:
    from multicloud_testbed.disk import StoredObject

MAX_SIZE = 16 * 1024 * 1024  # generated in memory per request: a test bed of small objects, not of large ones
EPOCH = 1_767_225_600.0  # 2026-01-01 UTC: every generated object was last modified then


@dataclass(frozen=True)
class SyntheticSpec:
    """What a synthetic bucket holds.

    :param count: number of generated objects.
    :param size: bytes of each.
    :param seed: varies the bytes (same seed, same bytes).
    :param prefix: leads every generated key (e.g. ``"data/"``).
    :param suffix: ends every generated key.
    :param width: digits of the index (default: enough for ``count``); keys sort by index either way.
    :param replica_of: the generated objects carry the metadata the copy engine writes on a verified copy of a
        source declared with the same count, size and seed (source ETag, size and CRC64), "as if already copied".
    """

    count: int
    size: int = 32
    seed: int = 0
    prefix: str = ""
    suffix: str = ""
    width: int = 0
    replica_of: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.count < 0 or not 0 <= self.size <= MAX_SIZE:
            raise ValueError(f"synthetic bucket: count must be >= 0 and size 0..{MAX_SIZE}, got {self}")
        digits = len(str(max(self.count - 1, 0)))
        if self.width and self.width < digits:
            raise ValueError(f"synthetic bucket: width {self.width} cannot number {self.count} objects")
        object.__setattr__(self, "width", self.width or digits)


class _Keys(Sequence[str]):
    """The generated keys as a lazy sorted sequence (``bisect`` works on it without building a list)."""

    def __init__(self, spec: SyntheticSpec) -> None:
        self.spec = spec

    def __len__(self) -> int:
        return self.spec.count

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return f"{self.spec.prefix}{i % len(self):0{self.spec.width}d}{self.spec.suffix}"


class SyntheticBucket:
    """The generated part of one bucket. Thread-safe."""

    def __init__(self, spec: SyntheticSpec) -> None:
        self.spec = spec
        self.keys = _Keys(spec)
        self._deleted: set[str] = set()
        self._lock = threading.Lock()
        self._sums: Callable[[int], tuple[str, int]] = lru_cache(maxsize=4096)(self._checksums)

    def index(self, key: str) -> int | None:
        """The index of a generated key, or None when ``key`` is not one."""
        s = self.spec
        if not (key.startswith(s.prefix) and key.endswith(s.suffix)):
            return None
        digits = key[len(s.prefix) : len(key) - len(s.suffix)]
        if len(digits) != s.width or not digits.isascii() or not digits.isdigit():
            return None
        i = int(digits)
        return i if i < s.count else None

    def data(self, i: int) -> bytes:
        base = f"{self.spec.seed}:{self.keys[i][len(self.spec.prefix) :]}".encode()
        blocks = (self.spec.size + 63) // 64
        return b"".join(hashlib.sha512(base + j.to_bytes(4, "big")).digest() for j in range(blocks))[: self.spec.size]

    def body(self, key: str) -> bytes:
        i = self.index(key)
        if i is None:
            raise KeyError(key)
        return self.data(i)

    def _checksums(self, i: int) -> tuple[str, int]:
        body = self.data(i)
        return hashlib.md5(body).hexdigest(), crc64(body)

    def lookup(self, key: str) -> StoredObject | None:
        """The generated object of that name, or None (not generated, or deleted)."""
        from multicloud_testbed.disk import StoredObject

        i = self.index(key)
        if i is None or key in self._deleted:
            return None
        etag, crc = self._sums(i)
        meta = dict(self.spec.metadata)
        if self.spec.replica_of:
            # the forms the copy engine writes (replication/copy.py _metadata)
            meta.update({META_SOURCE_SIZE: str(self.spec.size), META_SOURCE_ETAG: etag, META_CRC64: f"{crc:016x}"})
        return StoredObject(key, self.spec.size, etag, crc, EPOCH, metadata=meta)

    def delete(self, key: str) -> bool:
        if self.lookup(key) is None:
            return False
        with self._lock:
            self._deleted.add(key)
        return True
