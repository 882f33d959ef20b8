"""Progress of a copy: objects and bytes done, counted inside objects as they stream, one throughput, an ETA.

Bytes are bytes written to destinations (an object copied to three replicas counts three times), as the run
summary's ``copied_bytes``; the throughput is those bytes over the seconds since the run started, as the summary's
``throughput_mb_s`` (:func:`throughput` is the one definition). The copy path feeds bytes as each writer takes them
(:func:`count_consumed`), so a large object moves the count while it streams; when an object ends its count is
settled to what was written.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial

log = logging.getLogger("airflow_multicloud.progress")

_local = threading.local()


def throughput(nbytes: float, seconds: float) -> float:
    """MB/s: bytes written to destinations over seconds since the run started (the progress line and the summary)."""
    return nbytes / 1e6 / max(seconds, 1e-9)


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


@dataclass(frozen=True)
class Snapshot:
    """Where a run stands. ``eta_s`` is None until something was copied (or when nothing is left)."""

    objects: int
    total_objects: int
    bytes: int
    total_bytes: int
    failed: int
    elapsed_s: float
    mb_s: float
    eta_s: float | None
    #: the listing still runs: the totals are what it found so far
    so_far: bool = False

    @property
    def fraction(self) -> float:
        if self.total_bytes:
            return min(self.bytes / self.total_bytes, 1.0)
        return self.objects / self.total_objects if self.total_objects else 1.0

    def line(self) -> str:
        eta = _duration(self.eta_s) if self.eta_s is not None else "-"
        listed = " listed so far" if self.so_far else ""
        return (
            f"{self.objects}/{self.total_objects} objects{listed}, {_mb(self.bytes)}/{_mb(self.total_bytes)} written, "
            f"{self.mb_s:,.1f} MB/s, {self.failed} failed, ETA {eta}"
        )


#: called with each snapshot every ``interval`` seconds, and once with ``final=True`` when copying ends
Display = Callable[[Snapshot, bool], None]


def log_display(snap: Snapshot, final: bool) -> None:
    """The default display: a log line (task logs, and ``multicloud -v``)."""
    log.info("%s: %s", "done" if final else "progress", snap.line())


class _Slot:
    """The object a worker thread is copying: bytes counted so far, capped at what it will write."""

    __slots__ = ("cap", "counted", "progress")

    def __init__(self, progress: Progress, cap: int) -> None:
        self.progress, self.cap, self.counted = progress, cap, 0


def _ignore(n: int) -> None:
    pass


def object_counter() -> Callable[[int], None]:
    """Adds written bytes to the progress of the object this thread copies (a no-op outside a tracked copy): take it
    in that thread, hand it to the writer threads it starts."""
    slot: _Slot | None = getattr(_local, "slot", None)
    return partial(slot.progress._streamed, slot) if slot is not None else _ignore


def count_consumed(chunks: Iterable[bytes], add: Callable[[int], None]) -> Iterator[bytes]:
    """Pass ``chunks`` to a writer, counting each one when the writer asks for the next (it has sent it, or handed
    it to its part uploads), so the count follows the writes rather than the read-ahead."""
    pending = 0
    for chunk in chunks:
        if pending:
            add(pending)
        pending = len(chunk)
        yield chunk
    if pending:
        add(pending)


class Progress:
    """Counts a run's copies and shows them every ``interval`` seconds (0: only the final snapshot).

    :param started: ``time.monotonic()`` when the run started (default: now); the throughput counts from there, the
        ETA from when copying began.
    :param display: what shows a snapshot (default: a log line).
    """

    def __init__(
        self,
        total_objects: int,
        total_bytes: int,
        interval: float = 10.0,
        *,
        started: float | None = None,
        display: Display | None = None,
    ) -> None:
        self.total_objects = total_objects
        self.total_bytes = total_bytes
        self.so_far = False  # set while a listing still adds to the totals (:meth:`planned`)
        self.interval = interval
        self.display = display or log_display
        self.objects = 0
        self.failed = 0
        self._done_bytes = 0
        self._inflight: set[_Slot] = set()
        self.copying_since = time.monotonic()
        self.started = self.copying_since if started is None else started
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def planned(self, objects: int, nbytes: int) -> None:
        """The listing found more to copy (a run that copies while it still lists: totals are "so far")."""
        with self._lock:
            self.total_objects += objects
            self.total_bytes += nbytes

    @contextlib.contextmanager
    def tracking(self, writes: int) -> Iterator[None]:
        """Count what this thread's copy streams (:func:`object_counter`) toward an object that will write ``writes``
        bytes in all."""
        slot = _Slot(self, writes)
        with self._lock:
            self._inflight.add(slot)
        _local.slot = slot
        try:
            yield
        finally:
            _local.slot = None
            with self._lock:
                self._inflight.discard(slot)

    def _streamed(self, slot: _Slot, n: int) -> None:
        with self._lock:
            slot.counted = min(slot.counted + n, slot.cap)

    def add(self, written: int, failed: bool = False) -> None:
        """An object ended: ``written`` bytes reached destinations; ``failed`` if some copy of it failed."""
        with self._lock:
            self.objects += 1
            self._done_bytes += written
            self.failed += int(failed)

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._done_bytes + sum(s.counted for s in self._inflight)

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        done = self.bytes
        copying = now - self.copying_since
        left = self.total_bytes - done
        eta = left / (done / copying) if done > 0 and left > 0 and copying > 0 and not self.so_far else None
        return Snapshot(
            self.objects,
            self.total_objects,
            done,
            self.total_bytes,
            self.failed,
            now - self.started,
            throughput(done, now - self.started),
            eta,
            self.so_far,
        )

    def line(self) -> str:
        return self.snapshot().line()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.display(self.snapshot(), False)

    def __enter__(self) -> Progress:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.display(self.snapshot(), True)
