"""Reading a source once and feeding several writers: a tee over bounded queues, a bandwidth limit, and the run's
memory budget."""

from __future__ import annotations

import collections
import ctypes
import functools
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

_END = object()
#: how often a reader blocked on a full queue looks again whether that consumer is still alive
_POLL = 0.1
#: glibc's mallopt() parameter number for the size from which an allocation gets pages of its own
_M_MMAP_THRESHOLD = -3
#: buffers this big or bigger (source chunks, parts, PUT bodies) get pages of their own, given back when freed
MMAP_THRESHOLD = 1024 * 1024


class BandwidthLimiter:
    """A token bucket shared by every reader of a run: at most ``bytes_per_second`` on average."""

    def __init__(self, bytes_per_second: float) -> None:
        if bytes_per_second <= 0:
            raise ValueError(f"bandwidth limit must be positive, got {bytes_per_second}")
        self.rate = float(bytes_per_second)
        self._allowance = self.rate
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._allowance = min(self.rate, self._allowance + (now - self._last) * self.rate)
            self._last = now
            self._allowance -= n
            wait = -self._allowance / self.rate if self._allowance < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


@functools.cache
def return_freed_buffers() -> bool:
    """Make glibc give the pages of every freed large buffer back to the OS at once; True where it did.

    By default glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB), so later
    chunks and PUT bodies come from the per-thread heaps, which keep the pages of what was freed: with 32 copy
    threads the process then holds several times what the budget allows (measured: 30 objects of 15 MiB peak at
    605 MiB RSS, 272 MiB with the threshold pinned and the budget). Pinning the threshold turns that adjustment off.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


class ByteBudget:
    """A counting semaphore in bytes, shared by every copy of a run: the bytes its objects may hold at once.

    Each copy takes what it may hold (its source chunks, the queues to its writers, their parts in flight or the
    body of a single PUT) in one request before it reads anything, and gives it back when every writer is done:
    nobody waits while holding part of the budget, so copies cannot deadlock each other. A request is cut to the
    whole budget, so an object bigger than the budget still runs (alone). Requests are served in arrival order,
    so a large one is not starved by a stream of small ones.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"memory budget must be positive, got {capacity}")
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self._cond = threading.Condition()
        self._queue: collections.deque[object] = collections.deque()

    def __reduce__(self) -> tuple[type[ByteBudget], tuple[int]]:
        # operators are deep-copied (task mapping, DAG parsing): a copy is a fresh, unused budget of the same size
        return ByteBudget, (self.capacity,)

    def acquire(self, n: int) -> int:
        """Wait until ``n`` bytes (at most the whole budget) are free and take them; return how many were taken."""
        return_freed_buffers()  # on first use, not when a DAG file building its options is parsed
        n = max(0, min(n, self.capacity))
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self.in_use + n > self.capacity:
                    self._cond.wait()
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()
            self.in_use += n
            self.peak = max(self.peak, self.in_use)
        return n

    def release(self, n: int) -> None:
        with self._cond:
            self.in_use -= n
            self._cond.notify_all()

    @contextmanager
    def hold(self, n: int) -> Iterator[int]:
        taken = self.acquire(n)
        try:
            yield taken
        finally:
            self.release(taken)


def limited(chunks: Iterable[bytes], limiter: BandwidthLimiter | None) -> Iterator[bytes]:
    for chunk in chunks:
        if limiter is not None:
            limiter.take(len(chunk))
        yield chunk


class SourceFailed(Exception):
    """Raised inside a writer's stream when the shared source read failed."""


class Tee:
    """Feeds one stream of chunks to several consumers, each through a bounded queue.

    Every wait is bounded by the peer's liveness: the reader waits on a full queue only while that consumer is
    alive, and a consumer waits for a chunk only until the reader ends or fails. A consumer whose writer stopped
    must say so with :meth:`close` (a generator left suspended in a failed writer's traceback is never finalized,
    so its ``finally`` cannot be relied on); it is then dropped and never blocks the others. If the source fails,
    every live consumer's stream raises :class:`SourceFailed` so its upload aborts instead of completing short.
    """

    def __init__(self, n: int, depth: int = 8) -> None:
        self.queues: list[queue.Queue[object]] = [queue.Queue(maxsize=depth) for _ in range(n)]
        self._dead = [threading.Event() for _ in range(n)]

    def stream(self, i: int) -> Iterator[bytes]:
        q = self.queues[i]
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise SourceFailed(str(item)) from item
                yield item  # type: ignore[misc]
        finally:
            self.close(i)

    def close(self, i: int) -> None:
        """Consumer ``i`` takes nothing more: the reader stops feeding it and what it holds is freed."""
        self._dead[i].set()
        q = self.queues[i]
        while True:
            try:
                q.get_nowait()
            except queue.Empty:
                return

    def _put(self, i: int, item: object) -> None:
        q = self.queues[i]
        while not self._dead[i].is_set():
            try:
                q.put(item, timeout=_POLL)
            except queue.Full:
                continue
            if self._dead[i].is_set():  # closed while putting: free the item now, nobody will take it
                self.close(i)
            return

    def feed(self, chunks: Iterable[bytes]) -> None:
        """Push every chunk to every live consumer, then the end marker; stop early once none is alive.

        An error raised by ``chunks`` is passed on: the caller reports it to the consumers with :meth:`fail`.
        """
        for chunk in chunks:
            if all(dead.is_set() for dead in self._dead):
                return
            for i in range(len(self.queues)):
                self._put(i, chunk)
        for i in range(len(self.queues)):
            self._put(i, _END)

    def fail(self, exc: BaseException) -> None:
        """The source read failed: every live consumer's stream raises :class:`SourceFailed` next."""
        for i in range(len(self.queues)):
            self._put(i, exc)
