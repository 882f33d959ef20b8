"""One replication run: check the inputs, plan, copy in parallel, write manifests, mirror deletions, summarise."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from airflow_multicloud import arguments
from airflow_multicloud.errors import InvalidArgumentError, MulticloudError, StoreError
from airflow_multicloud.replication import cost as costs
from airflow_multicloud.replication.consolidate import ManifestRetention, maintain
from airflow_multicloud.replication.copy import CopyOptions
from airflow_multicloud.replication.dispatch import run_plan
from airflow_multicloud.replication.manifest import DEFAULT_MANIFEST_DIR
from airflow_multicloud.replication.mirror import mirror_deletes, tally_plan
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
from airflow_multicloud.replication.pipeline import PlannedKeys, PlanningError, planned_entries, streams
from airflow_multicloud.replication.plan import Filters, invalid_keys, plan_copy
from airflow_multicloud.replication.progress import Display, throughput
from airflow_multicloud.replication.record import Recorder, note
from airflow_multicloud.replication.retention import (
    locked_as_conflicts,
    parse_retention,
    prepare_destinations,
)
from airflow_multicloud.replication.retry import with_retries
from airflow_multicloud.replication.uploads import clean_uploads

log = logging.getLogger(__name__)


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
    summary = RunSummary(run_id, source.uri, [d.uri for d in destinations], dry_run=options.dry_run)
    summary.retention = protection
    pricing = costs.load_pricing(options.pricing)  # a table that does not load is refused before any write
    plan, entries = _begin(source, destinations, plan, options, summary, shard, pricing)
    # a plan still being made knows no keys yet: an unfinished upload's source is then looked up (a HEAD each)
    planned = PlannedKeys(plan.entries if entries is None else None)
    leftovers = clean_uploads(source, destinations, planned, options.stale_upload_age, dry_run=options.dry_run)
    summary.unfinished_uploads = [str(x) for x in leftovers]
    deletes = plan.extras if options.mode is Mode.MIRROR else {}
    if options.dry_run:
        tally_plan(summary, destinations, plan, deletes)
        summary.duration_s = round(time.monotonic() - started, 3)
        _check_max_delete(destinations, deletes, options, summary)
        return summary
    _check_max_delete(destinations, deletes, options, summary)

    def listed() -> None:  # once every entry was decided (at once where the plan came before the copies)
        if entries is not None:
            _planned(source, destinations, plan, options, summary, shard, pricing)

    try:
        _copy_and_record(source, destinations, plan, entries, options, summary, shard, deletes, started, listed)
        if options.mode is Mode.MIRROR:
            mirror_deletes(destinations, deletes, options.copy, summary)
    except EmptySourceError:  # known once a listing that copies as it goes has ended: nothing was written
        raise
    except PlanningError as exc:
        summary.duration_s = round(time.monotonic() - started, 3)
        if summary.copied:
            raise _stopped(exc, summary) from exc
        raise exc.__cause__ or exc from None  # nothing was written: the planning error, as a plan made first gives
    except Exception as exc:
        summary.duration_s = round(time.monotonic() - started, 3)
        raise _stopped(exc, summary) from exc
    summary.duration_s = round(time.monotonic() - started, 3)
    summary.throughput_mb_s = round(throughput(summary.copied_bytes, summary.duration_s), 2)
    if summary.conflict_keys:
        log.warning("not overwritten (overwrite='never' or a retention lock): %s", summary.conflict_keys[:20])
    if summary.failed:
        shown = "\n  ".join(summary.failed_keys[:20])
        raise ReplicationError(f"{summary.failed} object copies failed:\n  {shown}", summary)
    return summary


def _begin(
    source: Location,
    destinations: Sequence[Location],
    plan: Plan | None,
    options: ReplicationOptions,
    summary: RunSummary,
    shard: str | None,
    pricing: dict[str, Any],
) -> tuple[Plan, Iterator[PlanEntry] | None]:
    """The plan, and its entries as they are decided where the copies start before the listing ends (else None:
    the plan is complete, and the summary knows what it tells)."""
    if plan is None and shard is None and streams(options):
        return planned_entries(source, destinations, options)
    if plan is None:
        plan = plan_copy(
            source,
            destinations,
            filters=options.filters,
            overwrite=options.overwrite,
            manifest_dir=options.manifest_dir,
            list_workers=options.list_workers,
        )
    # the plan's totals come before the first write here: the budget, the mirror's max_delete, a dry run's report
    _planned(source, destinations, plan, options, summary, shard, pricing)
    return plan, None


def _stopped(exc: BaseException, summary: RunSummary) -> IncompleteRunError:
    return IncompleteRunError(
        f"the run stopped before it finished: {exc}. So far {summary.copied} objects were copied, "
        f"{len(summary.manifests)} manifests written and {summary.deleted} objects deleted; run it again to "
        "finish (verified copies are skipped)",
        summary,
    )


def _planned(
    source: Location,
    destinations: Sequence[Location],
    plan: Plan,
    options: ReplicationOptions,
    summary: RunSummary,
    shard: str | None,
    pricing: dict[str, Any],
) -> None:
    """What the complete plan tells the summary (counts, cost, invalid keys), said in the log; the empty-source and
    budget checks."""
    summary.objects, summary.bytes = plan.objects, plan.bytes
    summary.cost = costs.estimate(
        source,
        destinations,
        plan,
        pricing=pricing,
        retention_checked=bool(summary.retention),
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


def _copy_and_record(
    source: Location,
    destinations: Sequence[Location],
    plan: Plan,
    entries: Iterable[PlanEntry] | None,
    options: ReplicationOptions,
    summary: RunSummary,
    shard: str | None,
    deletes: dict[int, list[str]],
    started: float | None,
    listed: Callable[[], None],
) -> None:
    """Copy, streaming each result into the summary and its destination's manifest; then send the manifests
    (retried like copies; one that still fails is a failure) and keep each replica's chain in shape. ``entries``:
    the plan's entries as they are decided (None: the plan is complete); ``listed`` runs once they all were."""
    header = {"complete": shard is None, "shard": shard, "mode": options.mode.value}
    recorder = Recorder(source, destinations, summary, header, options.manifest_dir)
    try:

        def record(entry: PlanEntry, copied: list[ObjectResult]) -> None:
            locked_as_conflicts([(entry, copied)], summary)  # an overwrite a lock refused is a conflict
            recorder.add(entry, copied)

        first = run_plan(source, destinations, plan.entries if entries is None else entries, options, record, started)
        summary.first_copy_s = None if first is None else round(first, 3)
        listed()
        recorder.held_skips(plan)
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
