"""Streams the plan merges: a listing read ahead on its own thread through a bounded queue, checked to come in
key order, and peeked one item ahead."""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from airflow_multicloud.stores.base import ObjectInfo

T = TypeVar("T")

#: items read ahead of the merge per listing: a few pages, whatever the number of objects
DEPTH = 4000
#: items handed over at once
BATCH = 250


class ListingOrderError(ValueError):
    """A listing did not come in key order, so a merge of listings would decide wrongly."""


def ahead(items: Iterable[T], name: str, depth: int = DEPTH, batch: int = BATCH) -> Iterator[T]:
    """``items`` produced on a thread of their own, at most about ``depth`` ahead of the consumer; an error of the
    producer is raised in the consumer. Closing the generator stops the producer at its next item. Items cross
    the queue ``batch`` at a time: a queue hand-off costs several microseconds, many times the merge's own work
    per object."""
    box: queue.Queue[tuple[list[T], BaseException | None, bool]] = queue.Queue(maxsize=max(1, depth // batch))
    stop = threading.Event()

    def put(items: list[T], error: BaseException | None = None, end: bool = False) -> bool:
        while not stop.is_set():
            try:
                box.put((items, error, end), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        held: list[T] = []
        try:
            for item in items:
                held.append(item)
                if len(held) >= batch:
                    if not put(held):
                        return
                    held = []
        except BaseException as exc:  # handed to the consumer, which raises it
            put(held, exc)
            return
        put(held, end=True)

    # started now, not at the first item asked for: the listings of a plan then wait on their stores at once
    threading.Thread(target=produce, name=name[:60], daemon=True).start()
    consumer = _consume(box, stop)
    weakref.finalize(consumer, stop.set)  # a consumer dropped before its first item still stops the producer
    return consumer


def _consume(box: queue.Queue[tuple[list[T], BaseException | None, bool]], stop: threading.Event) -> Iterator[T]:
    try:
        while True:
            got, error, end = box.get()
            yield from got
            if error is not None:
                raise error
            if end:
                return
    finally:
        stop.set()


def ordered(infos: Iterable[ObjectInfo], where: str, prefix: str) -> Iterator[ObjectInfo]:
    """``infos`` as they come, refusing one whose key sorts before the previous one (Python compares strings by
    code point, which is the binary UTF-8 order S3, COS and OSS list in)."""
    last = ""
    for info in infos:
        if info.key < last:
            raise order_error(where, prefix, info.key, last)
        last = info.key
        yield info


def order_error(where: str, prefix: str, key: str, last: str) -> ListingOrderError:
    """The error of a listing in which ``key`` came after ``last``."""
    return ListingOrderError(
        f"the listing of {where} is not in key order ({key[len(prefix) :]!r} came after "
        f"{last[len(prefix) :]!r}): this store cannot be planned as a stream"
    )


class Peekable(Generic[T]):
    """An iterator that can show its next item without taking it."""

    def __init__(self, items: Iterator[T]) -> None:
        self._items = items
        self._next: list[T] = []

    def peek(self) -> T | None:
        if not self._next:
            try:
                self._next.append(next(self._items))
            except StopIteration:
                return None
        return self._next[0]

    def __iter__(self) -> Peekable[T]:
        return self

    def __next__(self) -> T:
        if self._next:
            return self._next.pop()
        return next(self._items)
