"""Progress lines at a steady interval: objects and bytes done, throughput, ETA."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("airflow_multicloud.progress")


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


class Progress:
    def __init__(self, total_objects: int, total_bytes: int, interval: float = 10.0) -> None:
        self.total_objects = total_objects
        self.total_bytes = total_bytes
        self.interval = interval
        self.objects = 0
        self.bytes = 0
        self.failed = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, size: int, failed: bool = False) -> None:
        with self._lock:
            self.objects += 1
            self.bytes += 0 if failed else size
            self.failed += int(failed)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.bytes / elapsed
        left = self.total_bytes - self.bytes
        eta = f"{left / rate:,.0f} s" if rate > 0 and left > 0 else "-"
        return (
            f"{self.objects}/{self.total_objects} objects, {_mb(self.bytes)}/{_mb(self.total_bytes)}, "
            f"{rate / 1e6:,.1f} MB/s, {self.failed} failed, ETA {eta}"
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            log.info("progress: %s", self.line())

    def __enter__(self) -> Progress:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        log.info("done: %s", self.line())
