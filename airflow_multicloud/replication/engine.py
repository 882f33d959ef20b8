"""One replication run: check the inputs, plan, copy in parallel, write manifests, mirror deletions, summarise."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from threading import Semaphore

from airflow_multicloud.errors import MulticloudError, StoreError
from airflow_multicloud.replication.copy import CopyOptions, copy_object
from airflow_multicloud.replication.manifest import DEFAULT_MANIFEST_DIR, manifest_record, write_manifest
from airflow_multicloud.replication.model import (
    Location,
    Mode,
    ObjectResult,
    Overwrite,
    Plan,
    PlanEntry,
    RunSummary,
    parse_choice,
)
from airflow_multicloud.replication.plan import Filters, plan_copy
from airflow_multicloud.replication.progress import Progress
from airflow_multicloud.replication.uploads import clean_uploads

log = logging.getLogger(__name__)


class ReplicationError(MulticloudError):
    """The run finished but some objects failed; ``summary`` says which."""

    def __init__(self, message: str, summary: RunSummary) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class ReplicationOptions:
    """Everything a run can be told, shared by the operator and ``multicloud replicate``.

    :param mode: ``copy`` never deletes; ``mirror`` also deletes destination objects absent at the source, only
        after every copy verified, and refuses when that would delete more than ``max_delete`` objects.
    :param overwrite: ``if_changed`` re-copies a changed source object; ``never`` reports it and leaves the
        destination as it is (immutable backups).
    :param workers: objects copied at once; ``large_workers`` of them at most may be multipart uploads.
    :param dry_run: plan and report, write nothing.
    :param allow_empty: an empty source is an error unless this is set.
    :param stale_upload_age: unfinished multipart uploads under a destination older than this are aborted (and
        reported) before the run, as are those whose source object is gone; younger ones may belong to a run
        still writing them, or be resumed by this one. Seconds, or a timedelta.
    """

    mode: Mode = Mode.COPY
    overwrite: Overwrite = Overwrite.IF_CHANGED
    filters: Filters = field(default_factory=Filters)
    max_delete: int = 0
    # measured in bench/: 32 small objects in flight keep two request-bound servers busy; 2 large ones x 4 parts
    # each are as fast as more and thrash the servers less (bench/README.md)
    workers: int = 32
    large_workers: int = 2
    copy: CopyOptions = field(default_factory=CopyOptions)
    manifest_dir: str = DEFAULT_MANIFEST_DIR
    dry_run: bool = False
    allow_empty: bool = False
    progress_interval: float = 10.0
    run_id: str = ""
    stale_upload_age: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", parse_choice(Mode, self.mode, "mode"))
        object.__setattr__(self, "overwrite", parse_choice(Overwrite, self.overwrite, "overwrite"))
        age = self.stale_upload_age
        if not isinstance(age, timedelta):
            age = timedelta(seconds=float(age))
            object.__setattr__(self, "stale_upload_age", age)
        if age <= timedelta(0):
            raise ValueError(f"stale_upload_age={age} must be positive: younger uploads may belong to a live run")
        if self.max_delete < 0 or self.workers < 1 or self.large_workers < 1:
            raise ValueError("max_delete must be >= 0, workers and large_workers >= 1")
        if not self.manifest_dir.endswith("/") or self.manifest_dir.startswith("/"):
            raise ValueError(f"manifest_dir={self.manifest_dir!r} must be a relative folder ending in '/'")


def _overlap(a: Location, b: Location) -> bool:
    if a.store.endpoint_id != b.store.endpoint_id:
        return False
    ua, ub = a.uri.rstrip("/") + "/", b.uri.rstrip("/") + "/"
    return ua.startswith(ub) or ub.startswith(ua)


def check_locations(source: Location, destinations: Sequence[Location]) -> None:
    """Refuse source/destination pairs that would read what they write."""
    if not destinations:
        raise ValueError("no destination given: name at least one")
    for i, dest in enumerate(destinations):
        for other, what in [(source, "the source"), *((d, "another destination") for d in destinations[:i])]:
            if _overlap(dest, other):
                raise ValueError(
                    f"destination {dest.uri} overlaps {what} {other.uri}: a replica must not sit inside the data it "
                    "copies (or contain it); choose a separate bucket or prefix"
                )


def run_plan(
    source: Location,
    destinations: Sequence[Location],
    entries: Sequence[PlanEntry],
    options: ReplicationOptions,
) -> list[tuple[PlanEntry, list[ObjectResult]]]:
    """Copy what the entries say, in parallel; skipped destinations get a 'skipped' result."""
    todo = [e for e in entries if "copy" in e.actions.values()]
    big = Semaphore(options.large_workers)
    threshold = min(d.store.transfer.multipart_threshold for d in destinations)
    progress = Progress(len(todo), sum(e.obj.size for e in todo), options.progress_interval)

    def one(entry: PlanEntry) -> tuple[PlanEntry, list[ObjectResult]]:
        targets = [(d, destinations[d]) for d, a in sorted(entry.actions.items()) if a == "copy"]
        if entry.obj.size >= threshold:
            with big:
                done = copy_object(source, targets, entry.obj, options.copy)
        else:
            done = copy_object(source, targets, entry.obj, options.copy)
        progress.add(entry.obj.size, failed=any(r.status == "failed" for r in done))
        return entry, done

    with progress, ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="copy") as pool:
        copied = list(pool.map(one, todo))
    return copied


def _results_by_dest(
    plan_entries: Sequence[PlanEntry], copied: Sequence[tuple[PlanEntry, list[ObjectResult]]], plan: Plan, n: int
) -> list[list[tuple[PlanEntry, ObjectResult]]]:
    by_dest: list[list[tuple[PlanEntry, ObjectResult]]] = [[] for _ in range(n)]
    done = {id(e): rs for e, rs in copied}
    for entry in plan_entries:
        results = {r.destination: r for r in done.get(id(entry), [])}
        for d, action in entry.actions.items():
            if action == "copy":
                by_dest[d].append((entry, results[d]))
            else:
                prev = plan.previous.get(d, {}).get(entry.obj.rel, {})
                by_dest[d].append(
                    (
                        entry,
                        ObjectResult(
                            entry.obj.rel,
                            d,
                            "skipped" if action == "skip" else "conflict",
                            entry.obj.size,
                            prev.get("crc64"),
                            prev.get("md5"),
                            prev.get("dest_etag"),
                            ["previous-manifest" if prev else "metadata"] if action == "skip" else [],
                        ),
                    )
                )
    return by_dest


def replicate(
    source: Location,
    destinations: Sequence[Location],
    options: ReplicationOptions | None = None,
    *,
    plan: Plan | None = None,
    shard: str | None = None,
) -> RunSummary:
    """Replicate ``source`` to every destination and return the summary; raise ReplicationError if any failed.

    ``plan`` and ``shard`` ("i/n") let mapped tasks copy one part of a plan made once.
    """
    options = options or ReplicationOptions()
    check_locations(source, destinations)
    started = time.monotonic()
    run_id = options.run_id or uuid.uuid4().hex[:12]
    if plan is None:
        plan = plan_copy(
            source,
            destinations,
            filters=options.filters,
            overwrite=options.overwrite,
            manifest_dir=options.manifest_dir,
        )
    summary = RunSummary(run_id, source.uri, [d.uri for d in destinations], dry_run=options.dry_run)
    summary.objects = len(plan.entries)
    summary.bytes = sum(e.obj.size for e in plan.entries)
    if not plan.entries and not options.allow_empty and shard is None:
        raise ValueError(
            f"source {source.uri} holds no objects (after filters): check the prefix and the date partition, "
            "or pass allow_empty=True if an empty dataset is expected"
        )
    log.info(
        "plan for %s -> %s: %d objects, %d copies to make, %d skipped, %d conflicts, extras %s",
        source.uri,
        ", ".join(summary.destinations),
        summary.objects,
        plan.count("copy"),
        plan.count("skip"),
        plan.count("conflict"),
        {destinations[d].uri: len(x) for d, x in plan.extras.items()},
    )
    planned = {e.obj.rel for e in plan.entries}
    leftovers = clean_uploads(source, destinations, planned, options.stale_upload_age, dry_run=options.dry_run)
    summary.unfinished_uploads = [str(x) for x in leftovers]
    if options.dry_run:
        summary.copied = plan.count("copy")
        summary.skipped = plan.count("skip")
        summary.conflicts = plan.count("conflict")
        summary.duration_s = round(time.monotonic() - started, 3)
        return summary
    copied = run_plan(source, destinations, plan.entries, options)
    by_dest = _results_by_dest(plan.entries, copied, plan, len(destinations))
    for d, dest in enumerate(destinations):
        rows = by_dest[d]
        _tally(summary, dest, rows)
        header = {
            "source": source.uri,
            "destination": dest.uri,
            "complete": shard is None,
            "shard": shard,
            "mode": options.mode.value,
        }
        try:
            summary.manifests.append(
                write_manifest(dest, run_id, header, (manifest_record(e.obj, r) for e, r in rows), options.manifest_dir)
            )
        except StoreError as exc:
            summary.failed += 1
            summary.failed_keys.append(f"manifest for {dest.uri} ({exc})")
    if options.mode is Mode.MIRROR:
        summary.deleted = _mirror_deletes(destinations, plan, options, summary)
    summary.duration_s = round(time.monotonic() - started, 3)
    summary.throughput_mb_s = round(summary.copied_bytes / 1e6 / max(summary.duration_s, 1e-9), 2)
    if summary.conflict_keys:
        log.warning("changed at the source but not overwritten (overwrite='never'): %s", summary.conflict_keys[:20])
    if summary.failed:
        shown = "\n  ".join(summary.failed_keys[:20])
        raise ReplicationError(f"{summary.failed} object copies failed:\n  {shown}", summary)
    return summary


def _tally(summary: RunSummary, dest: Location, rows: Sequence[tuple[PlanEntry, ObjectResult]]) -> None:
    counts = {status: sum(1 for _, r in rows if r.status == status) for status in ("copied", "skipped", "failed")}
    counts["conflicts"] = sum(1 for _, r in rows if r.status == "conflict")
    counts["copied_bytes"] = sum(r.size for _, r in rows if r.status == "copied")
    summary.per_destination.append({"destination": dest.uri, **counts})
    for entry, r in rows:
        uri = dest.store.uri(dest.key(entry.obj.rel))
        if r.status == "copied":
            summary.copied += 1
            summary.copied_bytes += r.size
        elif r.status == "skipped":
            summary.skipped += 1
        elif r.status == "conflict":
            summary.conflicts += 1
            summary.conflict_keys.append(uri)
        else:
            summary.failed += 1
            summary.failed_keys.append(f"{uri} ({r.error})")


def _mirror_deletes(
    destinations: Sequence[Location], plan: Plan, options: ReplicationOptions, summary: RunSummary
) -> int:
    if summary.failed:
        log.warning("mirror: not deleting anything because %d copies failed", summary.failed)
        return 0
    total = sum(len(x) for x in plan.extras.values())
    if total > options.max_delete:
        raise ReplicationError(
            f"mirror would delete {total} destination objects absent at the source, more than max_delete="
            f"{options.max_delete}; nothing was deleted. Check the source, or raise max_delete deliberately.",
            summary,
        )
    deleted = 0
    for d, rels in plan.extras.items():
        for rel in rels:
            destinations[d].store.delete(destinations[d].key(rel))
            deleted += 1
    return deleted
