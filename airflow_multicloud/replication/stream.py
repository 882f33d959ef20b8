"""Reading a source once and feeding several writers: a tee over bounded queues, and a bandwidth limit."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator

_END = object()


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


def limited(chunks: Iterable[bytes], limiter: BandwidthLimiter | None) -> Iterator[bytes]:
    for chunk in chunks:
        if limiter is not None:
            limiter.take(len(chunk))
        yield chunk


class SourceFailed(Exception):
    """Raised inside a writer's stream when the shared source read failed."""


class Tee:
    """Feeds one stream of chunks to several consumers, each through a bounded queue.

    A consumer that stops (its write failed) is dropped so it never blocks the others; if the source fails,
    every consumer's stream raises :class:`SourceFailed` so its upload aborts instead of completing short.
    """

    def __init__(self, n: int, depth: int = 8) -> None:
        self.queues: list[queue.Queue[object]] = [queue.Queue(maxsize=depth) for _ in range(n)]
        self.alive = [True] * n

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
            self.alive[i] = False
            self._drain(q)

    @staticmethod
    def _drain(q: queue.Queue[object]) -> None:
        while True:
            try:
                q.get_nowait()
            except queue.Empty:
                return

    def _put(self, i: int, item: object) -> None:
        q = self.queues[i]
        while self.alive[i]:
            try:
                q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def feed(self, chunks: Iterable[bytes]) -> None:
        """Push every chunk to every live consumer, then the end (or the error) marker."""
        try:
            for chunk in chunks:
                if not any(self.alive):
                    return
                for i in range(len(self.queues)):
                    self._put(i, chunk)
        except BaseException as exc:
            for i in range(len(self.queues)):
                self._put(i, exc)
            raise
        for i in range(len(self.queues)):
            self._put(i, _END)
