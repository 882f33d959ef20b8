"""One replication run: check the inputs, plan, copy in parallel, write manifests, mirror deletions, summarise."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from threading import Semaphore
from typing import Any

from airflow_multicloud import arguments
from airflow_multicloud.errors import InvalidArgumentError, MulticloudError, StoreError
from airflow_multicloud.replication.copy import CopyOptions, copy_object
from airflow_multicloud.replication.manifest import (
    DEFAULT_MANIFEST_DIR,
    DELETED,
    Kind,
    ManifestWriter,
    manifest_key,
    manifest_record,
)
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
from airflow_multicloud.replication.progress import Progress
from airflow_multicloud.replication.retention import Retention, maintain
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
    :param dry_run: plan and report, write nothing.
    :param allow_empty: an empty source is an error unless this is set.
    :param retention: how many manifests each replica keeps, and how often they are consolidated.
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
    retention: Retention = field(default_factory=Retention)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", parse_choice(Mode, self.mode, "mode"))
        object.__setattr__(self, "overwrite", parse_choice(Overwrite, self.overwrite, "overwrite"))
        arguments.whole("max_delete", self.max_delete)
        arguments.whole("workers", self.workers, 1)
        arguments.whole("large_workers", self.large_workers, 1)
        arguments.whole("object_retries", self.copy.object_retries)
        arguments.number("retry_backoff", self.copy.retry_backoff)
        arguments.number("progress_interval", self.progress_interval)
        arguments.flag("dry_run", self.dry_run)
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
            if action == PlanAction.COPY:
                by_dest[d].append((entry, results[d]))
            elif action == PlanAction.INVALID_KEY:
                why = entry.reasons.get(d, "invalid key")
                by_dest[d].append((entry, ObjectResult(entry.obj.rel, d, "failed", entry.obj.size, error=why)))
            else:
                prev = plan.previous.get(d, {}).get(entry.obj.rel, {})
                by_dest[d].append((entry, _unchanged_result(entry, d, action, prev)))
    return by_dest


def _unchanged_result(entry: PlanEntry, d: int, action: str, prev: dict[str, Any]) -> ObjectResult:
    """A skipped or conflicting object: a skip rests on the earlier verified copy, so its record carries that
    copy's checksums, source proof and replica version forward (validation counts a record only with them)."""
    held: dict[str, Any] = {"crc64": prev.get("crc64"), "md5": prev.get("md5"), "dest_etag": prev.get("dest_etag")}
    if action != PlanAction.SKIP:
        return ObjectResult(entry.obj.rel, d, "conflict", entry.obj.size, **held)
    proofs = [v for v in prev.get("verified_by") or () if isinstance(v, str) and v.startswith("source-")]
    proof = prev.get("source_proof") or (proofs[0] if proofs else None)
    return ObjectResult(
        entry.obj.rel,
        d,
        "skipped",
        entry.obj.size,
        **held,
        verified_by=[proof, "previous-manifest"] if proof else ["previous-manifest" if prev else "metadata"],
        source_proof=proof,
        dest_last_modified=prev.get("dest_last_modified"),
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
    summary.objects, summary.bytes = plan.objects, plan.bytes
    summary.invalid_keys = invalid_keys(plan, destinations)
    summary.reserved_skipped, summary.unlisted = len(plan.reserved), list(plan.unlisted)
    if not plan.objects and not options.allow_empty and shard is None:
        raise ValueError(
            f"source {source.uri} holds no objects (after filters): check the prefix and the date partition, "
            "or pass allow_empty=True if an empty dataset is expected"
        )
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
    planned = {e.obj.rel for e in plan.entries}
    leftovers = clean_uploads(source, destinations, planned, options.stale_upload_age, dry_run=options.dry_run)
    summary.unfinished_uploads = [str(x) for x in leftovers]
    if options.dry_run:
        _tally_plan(summary, destinations, plan, deletes)
        summary.duration_s = round(time.monotonic() - started, 3)
        _check_max_delete(destinations, deletes, options, summary)
        return summary
    _check_max_delete(destinations, deletes, options, summary)
    try:
        _copy_and_record(source, destinations, plan, options, summary, shard, deletes)
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
    summary.throughput_mb_s = round(summary.copied_bytes / 1e6 / max(summary.duration_s, 1e-9), 2)
    if summary.conflict_keys:
        log.warning("changed at the source but not overwritten (overwrite='never'): %s", summary.conflict_keys[:20])
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
) -> None:
    """Copy, then write one manifest per destination (retried like copies; one that still fails is a failure)
    holding what this run changed: a skip resting on an earlier manifest record is in the chain already."""
    copied = run_plan(source, destinations, plan.entries, options)
    by_dest = _results_by_dest(plan.entries, copied, plan, len(destinations))
    # the deletions a mirror is about to make (only when every copy verified) end the older records of those keys
    will_delete = not any(r.status == "failed" for rows in by_dest for _, r in rows)
    for d, dest in enumerate(destinations):
        rows = by_dest[d]
        _tally(summary, dest, rows, plan.skipped.get(d, 0))
        header = {
            "kind": Kind.RUN.value,
            "source": source.uri,
            "destination": dest.uri,
            "complete": shard is None,
            "shard": shard,
            "mode": options.mode.value,
        }
        key = manifest_key(dest, summary.run_id, Kind.RUN, options.manifest_dir)
        writer = ManifestWriter(dest, key, {"run_id": summary.run_id, **header})
        try:
            for e, r in rows:
                if r.status != "skipped" or "previous-manifest" not in r.verified_by:
                    writer.add(manifest_record(e.obj, r))
            for rel in deletes.get(d, []) if will_delete else []:
                writer.add({"key": rel, "status": DELETED})
            summary.manifests.append(with_retries(writer.upload, f"write the manifest of {dest.uri}", options.copy))
        except StoreError as exc:
            summary.failed += 1
            summary.failed_keys.append(f"manifest for {dest.uri} ({exc})")
            continue
        finally:
            writer.close()
        # a plan made in this run listed the manifests already; a shard's plan came without them
        known = [*plan.manifests[d], key] if d in plan.manifests else None
        maintain(dest, summary.run_id, options.retention, options.manifest_dir, known)


def _tally_plan(
    summary: RunSummary, destinations: Sequence[Location], plan: Plan, deletes: dict[int, list[str]]
) -> None:
    """What the plan would do, counted as a dry run reports it: per destination, with a sample of the deletions."""
    for d, dest in enumerate(destinations):
        actions = [e.actions.get(d) for e in plan.entries]
        rels = deletes.get(d, [])
        summary.per_destination.append(
            {
                "destination": dest.uri,
                "copied": actions.count(PlanAction.COPY),
                "skipped": actions.count(PlanAction.SKIP) + plan.skipped.get(d, 0),
                "failed": actions.count(PlanAction.INVALID_KEY),
                "conflicts": actions.count(PlanAction.CONFLICT),
                "copied_bytes": sum(e.obj.size for e in plan.entries if e.actions.get(d) == "copy"),
                "deleted": len(rels),
                "delete_sample": [dest.store.uri(dest.key(rel)) for rel in rels[:DELETE_SAMPLE]],
            }
        )
    summary.copied = plan.count("copy")
    summary.copied_bytes = sum(p["copied_bytes"] for p in summary.per_destination)
    summary.skipped = plan.count("skip")
    summary.conflicts = plan.count("conflict")
    summary.deleted = sum(len(x) for x in deletes.values())
    summary.failed, summary.failed_keys = len(summary.invalid_keys), list(summary.invalid_keys)


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


def _tally(
    summary: RunSummary, dest: Location, rows: Sequence[tuple[PlanEntry, ObjectResult]], held_skips: int
) -> None:
    """Count one destination's results; ``held_skips``: skips the plan only counted (no entry)."""
    counts = {status: sum(1 for _, r in rows if r.status == status) for status in ("copied", "skipped", "failed")}
    counts["skipped"] += held_skips
    summary.skipped += held_skips
    counts["conflicts"] = sum(1 for _, r in rows if r.status == "conflict")
    counts["copied_bytes"] = sum(r.size for _, r in rows if r.status == "copied")
    summary.per_destination.append({"destination": dest.uri, **counts, "deleted": 0})
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
    destinations: Sequence[Location], deletes: dict[int, list[str]], options: ReplicationOptions, summary: RunSummary
) -> None:
    """Delete the destination objects absent at the source, once every copy verified; each delete is retried like
    a copy, and one that still fails stops the run (``summary.deleted`` counts those done)."""
    if summary.failed:
        log.warning("mirror: not deleting anything because %d copies failed", summary.failed)
        return
    for d, rels in deletes.items():
        dest = destinations[d]
        for rel in rels:
            key = dest.key(rel)
            with_retries(partial(dest.store.delete, key), f"delete {dest.store.uri(key)}", options.copy)
            summary.deleted += 1
            summary.per_destination[d]["deleted"] += 1
