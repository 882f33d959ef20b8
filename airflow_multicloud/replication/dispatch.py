"""Entries handed to the copy workers: ``workers`` objects at once (large ones apart), results handed back one at a
time, progress counted as they stream."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from threading import Lock, Semaphore
from typing import TYPE_CHECKING

from airflow_multicloud.replication.concurrency import AdaptiveLimit, in_flight
from airflow_multicloud.replication.copy import copy_object
from airflow_multicloud.replication.model import Location, ObjectResult, PlanAction, PlanEntry
from airflow_multicloud.replication.progress import Progress
from airflow_multicloud.replication.spool import EntrySpool, copies_of

if TYPE_CHECKING:
    from airflow_multicloud.replication.engine import ReplicationOptions

log = logging.getLogger(__name__)


def totals(entries: Iterable[PlanEntry]) -> tuple[int, int] | None:
    """Objects to copy and bytes to write: a spool counted them as it was written, a list (a shard) is counted here
    in memory; entries still being planned (a stream) have no totals yet (None)."""
    if isinstance(entries, EntrySpool):
        return entries.copies, entries.copy_bytes
    if isinstance(entries, list):
        counts = [(copies_of(e), e.obj.size) for e in entries]
        return sum(1 for n, _ in counts if n), sum(n * size for n, size in counts)
    return None


def run_plan(
    source: Location,
    destinations: Sequence[Location],
    entries: Iterable[PlanEntry],
    options: ReplicationOptions,
    record: Callable[[PlanEntry, list[ObjectResult]], None],
    started: float | None = None,
) -> float | None:
    """Copy what the entries say, ``workers`` at once, handing each entry and its copies' results to ``record``
    as they complete (one call at a time; an entry with no copy to make gets no results). At most twice
    ``workers`` copies wait or run at once, so nothing grows with the number of entries; the entries are read once.
    ``started``: when the run began (``time.monotonic()``), for the progress's throughput. Entries that come from a
    listing still running (no totals) show their progress "so far". Returns the seconds from ``started`` to the
    first copy (None: no copy)."""
    known = totals(entries)
    big = Semaphore(options.large_workers)
    small = in_flight(options.workers, options.adaptive)
    slots = Semaphore(2 * small.maximum)
    lock = Lock()
    errors: list[BaseException] = []
    threshold = min(d.store.transfer.multipart_threshold for d in destinations)
    count, writes = known or (0, 0)
    progress = Progress(count, writes, options.progress_interval, started=started, display=options.progress_display)
    progress.so_far = known is None
    begun = time.monotonic() if started is None else started
    first: list[float] = []

    def one(entry: PlanEntry) -> None:
        try:
            targets = [(d, destinations[d]) for d, a in sorted(entry.actions.items()) if a == PlanAction.COPY]
            with progress.tracking(entry.obj.size * len(targets)):
                if entry.obj.size >= threshold:
                    with big:
                        done = copy_object(source, targets, entry.obj, options.copy)
                else:
                    with small.slot():
                        done = copy_object(source, targets, entry.obj, options.copy)
            copied = sum(r.size for r in done if r.status == "copied")
            progress.add(copied, failed=any(r.status == "failed" for r in done))
            with lock:
                record(entry, done)
        except BaseException as exc:  # raised in the caller once the copies in flight end
            errors.append(exc)
        finally:
            slots.release()

    with progress, ThreadPoolExecutor(max_workers=small.maximum, thread_name_prefix="copy") as pool:
        for entry in entries:
            if errors:
                break
            if not (n := copies_of(entry)):
                with lock:
                    record(entry, [])
                continue
            if known is None:
                progress.planned(1, entry.obj.size * n)
            slots.acquire()
            if not first:
                first.append(time.monotonic() - begun)
                log.info("first copy started %.3f s after the run began", first[0])
            pool.submit(one, entry)
        progress.so_far = False
    if isinstance(small, AdaptiveLimit):
        log.info("small objects in flight over the run (time, limit): %s", small.history[-20:])
    if errors:
        raise errors[0]
    return first[0] if first else None
