"""Parallel listing: one prefix listed as several key ranges at once, yielded in key order.

A listing is a chain of page requests, each waiting on the previous one's marker, so a large prefix lists at
one page per round trip. Cut into ranges at boundary keys, the ranges are chains of their own and can be
listed concurrently. The cut is complete by construction: range ``i`` holds the keys greater than
``bounds[i-1]`` and at most ``bounds[i]``, the first range everything up to ``bounds[0]``, the last everything
after the last bound, so no key can fall between two ranges, whatever its characters.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_multicloud.stores.base import ObjectInfo, ObjectStore

#: characters after the prefix where a range ends by default: even cuts for decimal, hex and alphanumeric names
DEFAULT_SPLIT = "123456789abcdefghijklmnopqrstuvwxyz"
_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def default_bounds(prefix: str, split: str = DEFAULT_SPLIT) -> list[str]:
    """Range ends for ``prefix``: the prefix followed by each character of ``split``."""
    return [prefix + c for c in sorted(set(split))]


def list_parallel(
    store: ObjectStore,
    prefix: str = "",
    bounds: Sequence[str] | None = None,
    *,
    workers: int = 8,
    buffer: int = 2000,
) -> Iterator[ObjectInfo]:
    """Every object under ``prefix`` in key order, as :meth:`ObjectStore.list`, listed as ranges at once.

    :param bounds: sorted keys where a range ends (inclusive); default :func:`default_bounds`. Bounds outside
        ``prefix`` are allowed (their ranges are empty), unsorted or repeated ones are refused.
    :param workers: ranges listed at the same time.
    :param buffer: objects each running range may hold ahead of the consumer (memory stays at about
        ``workers * buffer`` objects whatever the size of the listing).

    Ranges are started in key order and the consumer reads them in that order, so the range it is reading is
    always among the running ones. An error of any range is raised when the consumer reaches that range;
    closing the iterator early stops the listers after their current page.
    """
    cuts = list(default_bounds(prefix) if bounds is None else bounds)
    if any(a >= b for a, b in pairwise(cuts)):
        raise ValueError(f"list_parallel: bounds must be sorted and distinct, got {cuts[:10]}")
    if workers < 1 or buffer < 1:
        raise ValueError(f"list_parallel: workers and buffer must be >= 1, got {workers} and {buffer}")
    stop = threading.Event()
    ranges = [
        _Lister(store, prefix, low, high, buffer, stop) for low, high in zip([None, *cuts], [*cuts, None], strict=True)
    ]
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="list-range")
    try:
        for lister in ranges:
            pool.submit(lister.run)
        for lister in ranges:
            while (item := lister.queue.get()) is not _DONE:
                if isinstance(item, _Failed):
                    raise item.exc
                yield item  # type: ignore[misc]
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)


class _Lister:
    """One range, listed into a bounded queue the consumer drains."""

    def __init__(
        self, store: ObjectStore, prefix: str, low: str | None, high: str | None, buffer: int, stop: threading.Event
    ) -> None:
        self.store, self.prefix, self.low, self.high, self.stop = store, prefix, low, high, stop
        self.queue: queue.Queue[object] = queue.Queue(maxsize=buffer)

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            for info in _range(self.store, self.prefix, self.low, self.high):
                if not self._put(info):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            self._put(_Failed(exc))


def _range(store: ObjectStore, prefix: str, low: str | None, high: str | None) -> Iterator[ObjectInfo]:
    """Keys under ``prefix`` greater than ``low`` and at most ``high`` (None: no limit on that side)."""
    if high is not None and high < prefix:
        return
    listing = store.list(prefix) if low is None else store.list_after(prefix, low)
    for info in listing:
        if high is not None and info.key > high:
            return
        yield info
