"""How many copies a run keeps in flight: as many as the link needs, from its latency and its throughput.

By Little's law a link that completes ``rate`` copies a second, each taking ``latency`` seconds when nothing queues,
is kept busy by ``rate x latency`` copies in flight (its bandwidth-delay product). Far from a cloud every copy waits
out round trips, so a fixed number in flight leaves the link idle; next to it, more in flight only queues. The
controller measures both on the copies themselves and keeps the limit near that product:

- every window of completions it takes the window's rate and median latency, and the lowest median latency seen
  lately as the latency without queueing (forgotten slowly, so a link that got slower is learnt);
- while latency stays near that floor nothing queues: the link takes more, so the limit grows (x :data:`GROWTH`);
- when latency rises above it copies queue somewhere (a server, the client's CPU, the network): the limit goes to
  the product of the rate and the floor, plus :data:`HEADROOM` so the bottleneck never runs dry;
- a run that starts with a queue never sees the latency without one: every :data:`PROBE_EVERY` windows one window
  runs at half the limit, whose latency is then the floor if it is lower (BBR's "probe RTT" does the same).

Bounded by ``minimum`` and ``maximum`` (the threads and HTTP connections a run has). Memory is not its business:
every copy takes its bytes from the run's :class:`~airflow_multicloud.replication.stream.ByteBudget` first, so a
higher limit never holds more bytes than ``max_buffer``.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from airflow_multicloud.stores.base import CLIENT_POOL_SIZE

#: growth of the limit per window while latency stays at its floor (nothing queues)
GROWTH = 1.5
#: latency up to this multiple of the floor counts as "nothing queues" (jitter, not a queue)
TOLERANCE = 1.3
#: in-flight copies kept above the bandwidth-delay product once something queues
HEADROOM = 1.25
#: windows over which the latency floor is the lowest median (older windows are forgotten)
FLOOR_WINDOWS = 10
#: one window in this many runs at half the limit, to see the latency with less queued
PROBE_EVERY = 8


class AdaptiveLimit:
    """An adjustable semaphore fed with each copy's latency: :meth:`slot` waits below the current limit.

    :param initial: the limit before anything was measured.
    :param minimum: the limit never goes below this.
    :param maximum: nor above this (the worker threads and connections there are).
    :param window: completions per adjustment (at least this many, and at least half the limit).
    :param clock: seconds, monotonic (tests feed simulated time).
    """

    def __init__(
        self,
        initial: int,
        minimum: int,
        maximum: int,
        *,
        window: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"concurrency bounds must satisfy 1 <= minimum <= maximum, got {minimum}, {maximum}")
        self.minimum, self.maximum = minimum, maximum
        self._limit = float(min(max(initial, minimum), maximum))
        self._window = window
        self._clock = clock
        self._cond = threading.Condition()
        self._in_flight = 0
        self._samples: list[float] = []
        self._done = 0
        self._window_start = clock()
        self._medians: deque[float] = deque(maxlen=FLOOR_WINDOWS)
        self._windows = 0
        self._probing: float | None = None  # the limit to come back to after a probe window
        self.history: list[tuple[float, int]] = []  # (time, limit) after each adjustment: for logs and tests

    @property
    def limit(self) -> int:
        return int(self._limit)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def acquire(self) -> float:
        """Wait for room under the limit, take it; return the start time to hand to :meth:`release`."""
        with self._cond:
            while self._in_flight >= self.limit:
                self._cond.wait()
            self._in_flight += 1
        return self._clock()

    def release(self, started: float) -> None:
        """One copy ended (whatever its outcome): its latency is a sample."""
        now = self._clock()
        with self._cond:
            self._in_flight -= 1
            self._done += 1
            if started >= self._window_start:  # a copy begun under an earlier limit says nothing of this one
                self._samples.append(now - started)
            if len(self._samples) >= max(self._window, self.limit // 2):
                self._adjust(now)
            self._cond.notify_all()

    @contextmanager
    def slot(self) -> Iterator[None]:
        started = self.acquire()
        try:
            yield
        finally:
            self.release(started)

    def _adjust(self, now: float) -> None:
        elapsed = now - self._window_start
        samples, self._samples = self._samples, []
        done, self._done = self._done, 0
        self._window_start = now
        if elapsed <= 0:
            return
        median, rate = statistics.median(samples), done / elapsed
        previous = self._medians[-1] if self._medians else median
        self._medians.append(median)
        floor = min(self._medians)
        self._windows += 1
        if self._probing is not None:  # half as many in flight: each clearly faster means a queue was there
            base, self._probing = self._probing, None
            target = max(rate * floor * HEADROOM, self._limit) if median * TOLERANCE < previous else base
        elif self._windows % PROBE_EVERY == 0 and self._limit / 2 >= self.minimum:
            self._probing = self._limit
            target = self._limit / 2
        elif median <= floor * TOLERANCE:
            target = self._limit * GROWTH
        else:
            target = max(rate * floor * HEADROOM, self._limit / 2)  # one noisy window halves it at most
        self._limit = min(max(target, float(self.minimum)), float(self.maximum))
        self.history.append((now, self.limit))


class FixedLimit:
    """The same interface at a fixed number in flight (``workers`` set by hand)."""

    def __init__(self, limit: int) -> None:
        self.limit = self.maximum = limit
        self._sem = threading.Semaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._sem:
            yield


def in_flight(workers: int, adaptive: bool) -> AdaptiveLimit | FixedLimit:
    """The run's limit on small objects in flight: ``workers``, or starting there and following the link."""
    if not adaptive:
        return FixedLimit(workers)
    top = max(workers, CLIENT_POOL_SIZE)
    return AdaptiveLimit(workers, max(1, workers // 4), top)
