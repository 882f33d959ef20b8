"""Byte-range sources that validation reads, independent of any store or SDK.

Validation code sees an object only through :class:`RangeSource` (a name, a size and range reads), so the
same counting and checking runs over S3, COS, OSS, a local file or bytes in memory in a unit test.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from airflow_multicloud.stores.base import ObjectStore

MiB = 1024 * 1024


@runtime_checkable
class RangeSource(Protocol):
    """One immutable object: ``read(start, end)`` streams bytes ``[start, end)`` (``end=None``: to the end)."""

    name: str
    size: int

    def read(self, start: int, end: int | None) -> Iterator[bytes]: ...


def _clip(start: int, end: int | None, size: int) -> tuple[int, int]:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range [{start}, {end})")
    stop = size if end is None else min(end, size)
    return min(start, stop), stop


class BytesSource:
    """Bytes in memory; ``chunk_size`` sets how finely ``read`` splits them (tests use 1 to split every boundary)."""

    def __init__(self, data: bytes, name: str = "memory://object", *, chunk_size: int = MiB) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self.data = bytes(data)
        self.name = name
        self.size = len(self.data)
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"BytesSource({self.name!r}, size={self.size})"

    def read(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        lo, hi = _clip(start, end, self.size)
        view = memoryview(self.data)
        for pos in range(lo, hi, self.chunk_size):
            yield bytes(view[pos : min(pos + self.chunk_size, hi)])


class StoreSource:
    """One object of an :class:`~airflow_multicloud.stores.base.ObjectStore`, read with ranged GETs."""

    def __init__(self, store: ObjectStore, key: str, size: int, *, chunk_size: int = MiB) -> None:
        self.store = store
        self.key = key
        self.name = store.uri(key)
        self.size = size
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"StoreSource({self.name!r}, size={self.size})"

    def read(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        lo, hi = _clip(start, end, self.size)
        if hi <= lo:  # an empty range would be an invalid Range header on some stores
            return iter(())
        return self.store.read(self.key, lo, hi, chunk_size=self.chunk_size)


def source_from_store(store: ObjectStore, key: str, size: int | None = None, *, chunk_size: int = MiB) -> StoreSource:
    """A :class:`RangeSource` over ``store``/``key``; calls ``head`` only when ``size`` is not known already."""
    if size is None:
        size = store.head(key).size
    return StoreSource(store, key, size, chunk_size=chunk_size)


class CountingSource:
    """Wraps a source and counts what was actually read, so callers and tests can see the cost of a check.

    ``bytes_read`` counts bytes delivered by the underlying source; ``requests`` counts ``read`` calls.
    """

    def __init__(self, inner: RangeSource) -> None:
        self.inner = inner
        self.name = inner.name
        self.size = inner.size
        self.bytes_read = 0
        self.requests = 0

    def __repr__(self) -> str:
        return f"CountingSource({self.inner!r}, bytes_read={self.bytes_read})"

    def read(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        self.requests += 1
        for chunk in self.inner.read(start, end):
            self.bytes_read += len(chunk)
            yield chunk


def counting(source: RangeSource) -> CountingSource:
    """``source`` itself when it already counts, else a counting wrapper around it."""
    return source if isinstance(source, CountingSource) else CountingSource(source)


class _ReadFile(io.RawIOBase):
    """readinto/readall in terms of read(), for the two read-only files below."""

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)


class RangeFile(_ReadFile):
    """A seekable, read-only file over a :class:`RangeSource`, for libraries that want a file (pyarrow).

    Each miss fetches one range of at least ``block_size`` bytes and keeps it as a one-block cache. A block
    that would run past the end is shifted back to end at EOF: Parquet readers first read the last bytes of
    the file and then the footer just before them, so both usually come from one small range read.
    """

    def __init__(self, source: RangeSource, block_size: int = 64 * 1024) -> None:
        super().__init__()
        if block_size < 1:
            raise ValueError("block_size must be positive")
        self.source = source
        self.name = source.name
        self.size = source.size
        self.block_size = block_size
        self._pos = 0
        self._block_start = 0
        self._block = b""

    def __repr__(self) -> str:
        return f"RangeFile({self.source!r}, pos={self._pos})"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError(f"{self.name}: seek to negative position {pos}")
        self._pos = pos
        return pos

    def _fetch(self, pos: int, want: int) -> None:
        length = max(want, self.block_size)
        start = max(0, min(pos, self.size - length))
        end = min(self.size, start + length)
        self._block = b"".join(self.source.read(start, end))
        self._block_start = start
        if len(self._block) != end - start:
            raise OSError(f"{self.name}: range [{start}, {end}) returned {len(self._block)} bytes")

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        remaining = max(0, self.size - self._pos)
        want = remaining if size is None or size < 0 else min(size, remaining)
        if want == 0:
            return b""
        offset = self._pos - self._block_start
        if offset < 0 or offset + want > len(self._block):
            self._fetch(self._pos, want)
            offset = self._pos - self._block_start
        data = self._block[offset : offset + want]
        self._pos += len(data)
        return data


class ChunkStream(_ReadFile):
    """A forward-only readable file over an iterable of byte chunks (one streaming GET, no seeks).

    pyarrow's streaming CSV/JSON readers only read forward, so one long read beats range reads block by block.
    """

    def __init__(self, chunks: Iterable[bytes], name: str = "stream") -> None:
        super().__init__()
        self.name = name
        self._it = iter(chunks)
        self._buf = b""
        self._pos = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if size is None or size < 0:
            parts = [self._buf, *self._it]
            self._buf, self._eof = b"", True
            data = b"".join(parts)
        else:
            parts, have = [self._buf], len(self._buf)
            while have < size and not self._eof:  # collect, then join once: tiny chunks must not go quadratic
                nxt = next(self._it, None)
                if nxt is None:
                    self._eof = True
                else:
                    parts.append(nxt)
                    have += len(nxt)
            buf = parts[0] if len(parts) == 1 else b"".join(parts)
            data, self._buf = buf[:size], buf[size:]
        self._pos += len(data)
        return data
