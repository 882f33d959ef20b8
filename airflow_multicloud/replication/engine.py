"""One replication run: check the inputs, plan, copy in parallel, write manifests, mirror deletions, summarise."""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from threading import Lock, Semaphore

from airflow_multicloud import arguments
from airflow_multicloud.errors import InvalidArgumentError, MulticloudError, StoreError
from airflow_multicloud.replication import cost as costs
from airflow_multicloud.replication.concurrency import AdaptiveLimit, in_flight
from airflow_multicloud.replication.consolidate import ManifestRetention, maintain
from airflow_multicloud.replication.copy import CopyOptions, copy_object
from airflow_multicloud.replication.manifest import DEFAULT_MANIFEST_DIR
from airflow_multicloud.replication.model import (
    Location,
    Mode,
    ObjectResult,
    Overwrite,
    Plan,
    PlanAction,
    PlanEntry,
    RunSummary,
    parse_choice,
)
from airflow_multicloud.replication.plan import Filters, invalid_keys, plan_copy
from airflow_multicloud.replication.progress import Display, Progress, throughput
from airflow_multicloud.replication.record import KEY_SAMPLE, Recorder, note
from airflow_multicloud.replication.retention import (
    locked_as_conflicts,
    parse_retention,
    prepare_destinations,
    retention_guard,
)
from airflow_multicloud.replication.retry import with_retries
from airflow_multicloud.replication.uploads import clean_uploads

log = logging.getLogger(__name__)

#: deletions named in a summary (dry run or refusal) so a user can see what a mirror would remove
DELETE_SAMPLE = 10


class ReplicationError(MulticloudError):
    """The run finished but some objects failed; ``summary`` says which."""

    def __init__(self, message: str, summary: RunSummary) -> None:
        super().__init__(message)
        self.summary = summary


class MirrorLimitError(ReplicationError):
    """A mirror would delete more than ``max_delete`` objects: refused before anything was copied or deleted."""


class EmptySourceError(MulticloudError, ValueError):
    """The source holds no objects (after filters) and ``allow_empty`` is not set; ``allow`` names the switch."""

    def __init__(self, uri: str, allow: str = "allow_empty=True") -> None:
        super().__init__(
            f"source {uri} holds no objects (after filters): check the prefix and the date partition, "
            f"or pass {allow} if an empty dataset is expected"
        )
        self.uri = uri


class IncompleteRunError(ReplicationError):
    """A service or network failure that retries did not cure stopped the run after it began writing;
    ``summary`` says how far it got (copied, manifests written, deleted)."""


@dataclass(frozen=True)
class ReplicationOptions:
    """Everything a run can be told, shared by the operator and ``multicloud replicate``.

    :param mode: ``copy`` never deletes; ``mirror`` also deletes destination objects absent at the source, only
        after every copy verified, and refuses when that would delete more than ``max_delete`` objects.
    :param overwrite: ``if_changed`` re-copies a changed source object; ``never`` reports it and leaves the
        destination as it is (immutable backups).
    :param workers: objects copied at once; ``large_workers`` of them at most may be multipart uploads.
    :param adaptive: ``workers`` is only where the number of small objects in flight starts: it then follows what
        the link gives (its latency x its throughput, :mod:`.concurrency`), between a quarter of it and
        :data:`~airflow_multicloud.stores.base.CLIENT_POOL_SIZE` (the connections each store's client keeps).
    :param dry_run: plan and report, write nothing.
    :param allow_empty: an empty source is an error unless this is set.
    :param retention: keep every replica written write-once for this many days, or until this ISO date.
    :param retention_mode: ``COMPLIANCE`` (nobody can shorten it) or ``GOVERNANCE`` (S3: privileged users can).
    :param require_immutable: refuse to start unless every destination can hold the retention (or has a lock).
    :param max_cost: refuse to start when the estimated cost is above this (currency of the pricing table).
    :param pricing: path of a JSON pricing table replacing the shipped one.
    :param manifest_retention: how many manifests each replica keeps, and how often they are consolidated.
    :param progress_display: shows the progress every ``progress_interval`` seconds (default: a log line); the
        CLI's is a bar on a terminal.
    :param list_workers: list each cloud prefix as this many key ranges at once (1: one paged chain). It pays
        where a page's round trip outweighs its parsing (a distant region); bench/README.md ("Scale") measures it.
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
    adaptive: bool = False
    copy: CopyOptions = field(default_factory=CopyOptions)
    manifest_dir: str = DEFAULT_MANIFEST_DIR
    dry_run: bool = False
    allow_empty: bool = False
    progress_interval: float = 10.0
    run_id: str = ""
    retention: int | str | None = None
    retention_mode: str = "COMPLIANCE"
    require_immutable: bool = False
    max_cost: float | None = None
    pricing: str | None = None
    stale_upload_age: timedelta = timedelta(hours=24)
    manifest_retention: ManifestRetention = field(default_factory=ManifestRetention)
    progress_display: Display | None = field(default=None, compare=False, repr=False)
    list_workers: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", parse_choice(Mode, self.mode, "mode"))
        object.__setattr__(self, "overwrite", parse_choice(Overwrite, self.overwrite, "overwrite"))
        arguments.whole("max_delete", self.max_delete)
        arguments.whole("workers", self.workers, 1)
        arguments.whole("large_workers", self.large_workers, 1)
        arguments.whole("list_workers", self.list_workers, 1)
        arguments.whole("object_retries", self.copy.object_retries)
        arguments.number("retry_backoff", self.copy.retry_backoff)
        arguments.number("progress_interval", self.progress_interval)
        arguments.flag("dry_run", self.dry_run)
        arguments.flag("adaptive", self.adaptive)
        arguments.flag("allow_empty", self.allow_empty)
        arguments.folder("manifest_dir", self.manifest_dir)
        arguments.globs("include", self.filters.include)
        arguments.globs("exclude", self.filters.exclude)
        arguments.age("min_age", self.filters.min_age)
        arguments.age("max_age", self.filters.max_age)
        if not isinstance(self.run_id, str):
            raise InvalidArgumentError(f"run_id={self.run_id!r} must be a string")
        age = self.stale_upload_age
        if not isinstance(age, timedelta):
            age = timedelta(seconds=float(age))
            object.__setattr__(self, "stale_upload_age", age)
        if age <= timedelta(0):
            raise InvalidArgumentError(
                f"stale_upload_age={age} must be positive: younger uploads may belong to a live run"
            )


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


class _PlannedKeys(Collection[str]):
    """The relative keys of a plan's entries, read from them the first time a key is looked up (only a run that
    finds unfinished uploads asks): a no-op rerun or a clean first copy never builds the set."""

    def __init__(self, entries: Iterable[PlanEntry]) -> None:
        self._entries = entries
        self._keys: set[str] | None = None

    def _set(self) -> set[str]:
        if self._keys is None:
            self._keys = {e.obj.rel for e in self._entries}
        return self._keys

    def __contains__(self, key: object) -> bool:
        return key in self._set()

    def __iter__(self) -> Iterator[str]:
        return iter(self._set())

    def __len__(self) -> int:
        return len(self._set())


def run_plan(
    source: Location,
    destinations: Sequence[Location],
    entries: Iterable[PlanEntry],
    options: ReplicationOptions,
    record: Callable[[PlanEntry, list[ObjectResult]], None],
    started: float | None = None,
) -> None:
    """Copy what the entries say, ``workers`` at once, handing each entry and its copies' results to ``record``
    as they complete (one call at a time; an entry with no copy to make gets no results). At most twice
    ``workers`` copies wait or run at once, so nothing grows with the number of entries. ``started``: when the run
    began (``time.monotonic()``), for the progress's throughput."""
    count = writes = 0
    for e in entries:  # counted, not kept: the entries may be a spool of millions
        if (n := list(e.actions.values()).count(PlanAction.COPY)) > 0:
            count, writes = count + 1, writes + e.obj.size * n
    big = Semaphore(options.large_workers)
    small = in_flight(options.workers, options.adaptive)
    slots = Semaphore(2 * small.maximum)
    lock = Lock()
    errors: list[BaseException] = []
    threshold = min(d.store.transfer.multipart_threshold for d in destinations)
    progress = Progress(count, writes, options.progress_interval, started=started, display=options.progress_display)

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
            if PlanAction.COPY not in entry.actions.values():
                with lock:
                    record(entry, [])
                continue
            slots.acquire()
            pool.submit(one, entry)
    if isinstance(small, AdaptiveLimit):
        log.info("small objects in flight over the run (time, limit): %s", small.history[-20:])
    if errors:
        raise errors[0]


def replicate(
    source: Location,
    destinations: Sequence[Location],
    options: ReplicationOptions | None = None,
    *,
    plan: Plan | None = None,
    shard: str | None = None,
) -> RunSummary:
    """Replicate ``source`` to every destination and return the summary.

    Raises, each with the summary so far: :class:`MirrorLimitError` before anything is written when a mirror
    would delete more than ``max_delete``; :class:`ReplicationError` when some objects failed;
    :class:`IncompleteRunError` when a service or network failure stopped the run after it began writing. Errors
    of the inputs and of planning (nothing written yet) propagate as they are.

    ``plan`` and ``shard`` ("i/n") let mapped tasks copy one part of a plan made once.
    """
    options = options or ReplicationOptions()
    check_locations(source, destinations)
    policy = parse_retention(options.retention, options.retention_mode)
    protection = (
        prepare_destinations(destinations, policy, options.require_immutable)
        if policy is not None or options.require_immutable
        else []
    )
    started = time.monotonic()
    run_id = options.run_id or uuid.uuid4().hex[:12]
    if plan is None:
        plan = plan_copy(
            source,
            destinations,
            filters=options.filters,
            overwrite=options.overwrite,
            manifest_dir=options.manifest_dir,
            list_workers=options.list_workers,
        )
    summary = RunSummary(run_id, source.uri, [d.uri for d in destinations], dry_run=options.dry_run)
    summary.objects, summary.bytes = plan.objects, plan.bytes
    summary.retention = protection
    summary.cost = costs.estimate(
        source, destinations, plan, pricing=costs.load_pricing(options.pricing), retention_checked=bool(protection)
    )
    summary.invalid_keys = invalid_keys(plan, destinations)
    summary.reserved_skipped, summary.unlisted = len(plan.reserved), list(plan.unlisted)
    if not plan.objects and not options.allow_empty and shard is None:
        raise EmptySourceError(source.uri)
    deletes = plan.extras if options.mode is Mode.MIRROR else {}
    log.info(
        "plan for %s -> %s: %d objects, %d copies to make, %d skipped, %d conflicts, %d to delete",
        source.uri,
        ", ".join(summary.destinations),
        summary.objects,
        plan.count("copy"),
        plan.count("skip"),
        plan.count("conflict"),
        sum(len(x) for x in deletes.values()),
    )
    log.info("%s", costs.describe(summary.cost))
    costs.check_budget(summary.cost, options.max_cost)
    planned = _PlannedKeys(plan.entries)
    leftovers = clean_uploads(source, destinations, planned, options.stale_upload_age, dry_run=options.dry_run)
    summary.unfinished_uploads = [str(x) for x in leftovers]
    if options.dry_run:
        _tally_plan(summary, destinations, plan, deletes)
        summary.duration_s = round(time.monotonic() - started, 3)
        _check_max_delete(destinations, deletes, options, summary)
        return summary
    _check_max_delete(destinations, deletes, options, summary)
    try:
        _copy_and_record(source, destinations, plan, options, summary, shard, deletes, started)
        if options.mode is Mode.MIRROR:
            _mirror_deletes(destinations, deletes, options, summary)
    except Exception as exc:
        summary.duration_s = round(time.monotonic() - started, 3)
        raise IncompleteRunError(
            f"the run stopped before it finished: {exc}. So far {summary.copied} objects were copied, "
            f"{len(summary.manifests)} manifests written and {summary.deleted} objects deleted; run it again to "
            "finish (verified copies are skipped)",
            summary,
        ) from exc
    summary.duration_s = round(time.monotonic() - started, 3)
    summary.throughput_mb_s = round(throughput(summary.copied_bytes, summary.duration_s), 2)
    if summary.conflict_keys:
        log.warning("not overwritten (overwrite='never' or a retention lock): %s", summary.conflict_keys[:20])
    if summary.failed:
        shown = "\n  ".join(summary.failed_keys[:20])
        raise ReplicationError(f"{summary.failed} object copies failed:\n  {shown}", summary)
    return summary


def _copy_and_record(
    source: Location,
    destinations: Sequence[Location],
    plan: Plan,
    options: ReplicationOptions,
    summary: RunSummary,
    shard: str | None,
    deletes: dict[int, list[str]],
    started: float | None = None,
) -> None:
    """Copy, streaming each result into the summary and its destination's manifest; then send the manifests
    (retried like copies; one that still fails is a failure) and keep each replica's chain in shape."""
    header = {"complete": shard is None, "shard": shard, "mode": options.mode.value}
    recorder = Recorder(source, destinations, plan, summary, header, options.manifest_dir)
    try:

        def record(entry: PlanEntry, copied: list[ObjectResult]) -> None:
            locked_as_conflicts([(entry, copied)], summary)  # an overwrite a lock refused is a conflict
            recorder.add(entry, copied)

        run_plan(source, destinations, plan.entries, options, record, started)
        failed = summary.failed
        for d, (dest, writer) in enumerate(zip(destinations, recorder.writers, strict=True)):
            if not failed:  # a mirror deletes only once every copy verified
                recorder.deleting(d, deletes.get(d, []))
            try:
                summary.manifests.append(with_retries(writer.upload, f"write the manifest of {dest.uri}", options.copy))
            except StoreError as exc:
                summary.failed += 1
                note(summary.failed_keys, f"manifest for {dest.uri} ({exc})")
                continue
            # a plan made in this run listed the manifests already; a shard's plan came without them
            known = [*plan.manifests[d], writer.key] if d in plan.manifests else None
            maintain(dest, summary.run_id, options.manifest_retention, options.manifest_dir, known)
    finally:
        recorder.close()


def _tally_plan(
    summary: RunSummary, destinations: Sequence[Location], plan: Plan, deletes: dict[int, list[str]]
) -> None:
    """What the plan would do, counted as a dry run reports it: per destination, with a sample of the deletions."""
    for d, dest in enumerate(destinations):
        actions: Counter[PlanAction | None] = Counter()
        copied_bytes = 0
        for e in plan.entries:
            actions[e.actions.get(d)] += 1
            copied_bytes += e.obj.size if e.actions.get(d) == PlanAction.COPY else 0
        rels = deletes.get(d, [])
        summary.per_destination.append(
            {
                "destination": dest.uri,
                "copied": actions[PlanAction.COPY],
                "skipped": actions[PlanAction.SKIP] + plan.skipped.get(d, 0),
                "failed": actions[PlanAction.INVALID_KEY],
                "conflicts": actions[PlanAction.CONFLICT],
                "copied_bytes": copied_bytes,
                "deleted": len(rels),
                "delete_sample": [dest.store.uri(dest.key(rel)) for rel in rels[:DELETE_SAMPLE]],
            }
        )
    summary.copied = plan.count("copy")
    summary.copied_bytes = sum(p["copied_bytes"] for p in summary.per_destination)
    summary.skipped = plan.count("skip")
    summary.conflicts = plan.count("conflict")
    summary.deleted = sum(len(x) for x in deletes.values())
    summary.failed, summary.failed_keys = len(summary.invalid_keys), summary.invalid_keys[:KEY_SAMPLE]


def _check_max_delete(
    destinations: Sequence[Location], deletes: dict[int, list[str]], options: ReplicationOptions, summary: RunSummary
) -> None:
    total = sum(len(x) for x in deletes.values())
    if total <= options.max_delete:
        return
    sample = [destinations[d].store.uri(destinations[d].key(rel)) for d, rels in deletes.items() for rel in rels]
    raise MirrorLimitError(
        f"mirror would delete {total} destination objects absent at the source, more than max_delete="
        f"{options.max_delete}; nothing was copied or deleted. Check the source (it would delete e.g. "
        f"{', '.join(sample[:3])}), or raise max_delete deliberately.",
        summary,
    )


def _mirror_deletes(
    destinations: Sequence[Location], deletes: dict[int, list[str]], options: ReplicationOptions, summary: RunSummary
) -> None:
    """Delete the destination objects absent at the source, once every copy verified; each delete is retried like
    a copy, and one that still fails stops the run (``summary.deleted`` counts those done)."""
    if summary.failed:
        log.warning("mirror: not deleting anything because %d copies failed", summary.failed)
        return
    for d, rels in deletes.items():
        dest = destinations[d]
        retained = retention_guard(dest)
        for rel in rels:
            key = dest.key(rel)
            if retained(key):
                summary.locked += 1
                continue
            with_retries(partial(dest.store.delete, key), f"delete {dest.store.uri(key)}", options.copy)
            summary.deleted += 1
            summary.per_destination[d]["deleted"] += 1
