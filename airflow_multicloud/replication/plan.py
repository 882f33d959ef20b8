"""Decide, per source object and destination: copy, skip (verified copy of this exact version), conflict, or
invalid key (the destination would refuse it)."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_multicloud.errors import ObjectNotFoundError
from airflow_multicloud.replication.manifest import DEFAULT_MANIFEST_DIR, RecordCursor, is_manifest, manifest_prefix
from airflow_multicloud.replication.merge import Peekable, ahead, ordered
from airflow_multicloud.replication.model import (
    META_SOURCE_ETAG,
    META_SOURCE_SIZE,
    RESERVED_DIR,
    Location,
    Overwrite,
    Plan,
    PlanAction,
    PlanEntry,
    SourceObject,
)
from airflow_multicloud.replication.spool import EntrySpool
from airflow_multicloud.stores.base import ObjectInfo, normalize_etag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Filters:
    """Which source objects are copied. Globs match the key relative to the source prefix.

    Filters judge the source side only: ages are the source objects' ages. In mirror mode a destination object is
    an extra (deleted) only when no source object has its key, filtered out or not, and its key passes the globs
    (a key the globs leave out is outside what the mirror manages, so it is kept).

    :param include: keep only keys matching one of these globs (None: all).
    :param exclude: drop keys matching any of these globs.
    :param min_age: only objects last modified at least this long ago (skip files still being written).
    :param max_age: only objects last modified at most this long ago.
    """

    include: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    min_age: timedelta | None = None
    max_age: timedelta | None = None

    def matches(self, rel: str) -> bool:
        """True when the globs take ``rel`` in."""
        if self.include is not None and not any(fnmatch.fnmatchcase(rel, g) for g in self.include):
            return False
        return not any(fnmatch.fnmatchcase(rel, g) for g in self.exclude)

    def accepts(self, rel: str, modified: datetime | None, now: datetime) -> bool:
        """True when a source object is to be copied."""
        if not self.matches(rel):
            return False
        if modified is not None:
            age = now - modified
            if self.min_age is not None and age < self.min_age:
                return False
            if self.max_age is not None and age > self.max_age:
                return False
        return True


def list_dataset(
    loc: Location, reserved: list[str] | None = None, unlisted: list[str] | None = None, list_workers: int = 1
) -> Iterator[ObjectInfo]:
    """Objects of a dataset, without our own ``_multicloud/`` folders (manifests, reports).

    ``reserved`` collects the relative keys left out for being in such a folder, ``unlisted`` the entries a
    local store saw but does not list (see :meth:`ObjectStore.list_noting`). ``list_workers`` above 1 lists a
    cloud prefix as that many key ranges at once (:func:`~airflow_multicloud.stores.listing.list_parallel`).
    """
    for info in _listing(loc, [] if unlisted is None else unlisted, list_workers):
        rel = info.key[len(loc.prefix) :]
        if not _reserved(rel):
            yield info
        elif reserved is not None:
            reserved.append(rel)


def _listing(loc: Location, unlisted: list[str], list_workers: int) -> Iterator[ObjectInfo]:
    """One paged chain, or key ranges listed at once and put back in key order (the merge needs that order); a
    local folder is read from disk, where ranges gain nothing."""
    if list_workers > 1 and loc.store.scheme != "file":
        from airflow_multicloud.stores.listing import list_parallel

        return list_parallel(loc.store, loc.prefix, workers=list_workers)
    return loc.store.list_noting(loc.prefix, unlisted)


def _reserved(rel: str) -> bool:
    return rel.startswith(RESERVED_DIR) or f"/{RESERVED_DIR}" in rel


def _same_version(obj: SourceObject, dest: ObjectInfo, record: dict[str, Any] | None) -> bool:
    """True when the destination holds a verified copy of exactly this source version (no request made)."""
    if record is None or dest.size != obj.size or record.get("size") != obj.size:
        return False
    if obj.etag:
        if normalize_etag(record.get("source_etag")) != normalize_etag(obj.etag):
            return False
    elif obj.last_modified is None or record.get("source_last_modified") != obj.last_modified.isoformat():
        return False  # without an ETag (plain local files) the modification time names the version
    return bool(dest.etag) and normalize_etag(record.get("dest_etag")) == normalize_etag(dest.etag)


def _same_by_metadata(dest_loc: Location, obj: SourceObject, dest: ObjectInfo) -> bool:
    """Without a manifest entry: one HEAD, and our metadata must name this source version and size."""
    if dest.size != obj.size:
        return False
    try:
        meta = dest_loc.store.head(dest.key).metadata
    except ObjectNotFoundError:
        return False
    return (
        normalize_etag(meta.get(META_SOURCE_ETAG)) == normalize_etag(obj.etag)
        and bool(obj.etag)
        and meta.get(META_SOURCE_SIZE) == str(obj.size)
    )


def plan_copy(
    source: Location,
    destinations: Sequence[Location],
    *,
    filters: Filters | None = None,
    overwrite: Overwrite = Overwrite.IF_CHANGED,
    manifest_dir: str = DEFAULT_MANIFEST_DIR,
    now: datetime | None = None,
    list_workers: int = 1,
) -> Plan:
    """List the source and every destination once and decide what to do with each object.

    The listings (in key order: binary UTF-8 for S3, COS and OSS, sorted by the local store) and each
    destination's manifest records (key-sorted, docs/manifests.md) are merged as streams, so memory does not
    grow with the number of objects: the plan spools the objects with work to do to a temporary file, and counts
    the skips that an earlier verified record backs.
    """
    filters = filters or Filters()
    now = now or datetime.now(UTC)
    plan = Plan(EntrySpool(), objects=0, bytes=0)
    # a destination's manifests are listed first (one small folder) so their records stream in key order too
    names = [_manifest_names(dest, manifest_dir) for dest in destinations]
    sides = [_Side(dest, manifest_dir, names[d], plan.unlisted, list_workers) for d, dest in enumerate(destinations)]
    for d in range(len(destinations)):
        plan.manifests[d], plan.skipped[d], plan.extras[d] = names[d], 0, []
    # every side is listed at once: a listing is a chain of page requests, mostly waiting on the store
    listed = ahead(list_dataset(source, plan.reserved, plan.unlisted, list_workers), f"list {source.uri}")
    for info in ordered(listed, source.uri, source.prefix):
        rel = info.key[len(source.prefix) :]
        # filtered-out objects still belong to the source: they are never extras
        found = [side.until(rel, filters, plan.extras[d]) for d, side in enumerate(sides)]
        if not filters.accepts(rel, info.last_modified, now):
            continue
        obj = SourceObject(rel, info.size, info.etag, info.last_modified, info.crc64)
        plan.objects, plan.bytes = plan.objects + 1, plan.bytes + info.size
        entry = PlanEntry(obj, {})
        records = [side.record(rel) if found[d] is not None else None for d, side in enumerate(sides)]
        for d, dest in enumerate(destinations):
            entry.actions[d] = _decide(d, dest, entry, found[d], records[d], overwrite)
        if all(a == PlanAction.SKIP and records[d] is not None for d, a in entry.actions.items()):
            for d in entry.actions:  # the manifest chain holds each record already: nothing to keep
                plan.skipped[d] += 1
            continue
        entry.previous = {d: record for d, record in enumerate(records) if record is not None}
        plan.entries.append(entry)
    for d, side in enumerate(sides):
        side.until(None, filters, plan.extras[d])
    _report(source, destinations, plan)
    return plan


def _manifest_names(dest: Location, manifest_dir: str) -> list[str]:
    return [o.key for o in dest.store.list(manifest_prefix(dest, manifest_dir)) if is_manifest(o.key)]


class _Side:
    """One destination as the merge passes it: its listing and its manifest records, both in key order."""

    def __init__(
        self, dest: Location, manifest_dir: str, names: list[str], unlisted: list[str], list_workers: int
    ) -> None:
        self.dest = dest
        listed = ahead(list_dataset(dest, None, unlisted, list_workers), f"list {dest.uri}")
        self._objects = Peekable(ordered(listed, dest.uri, dest.prefix))
        self._records = RecordCursor(dest, manifest_dir, names)

    def until(self, rel: str | None, filters: Filters, extras: list[str]) -> ObjectInfo | None:
        """Pass the destination objects before ``rel`` (extras where the globs take them in); return ``rel``'s."""
        while (info := self._objects.peek()) is not None:
            key = info.key[len(self.dest.prefix) :]
            if rel is not None and key >= rel:
                if key == rel:
                    next(self._objects)
                    return info
                return None
            next(self._objects)
            if filters.matches(key):
                extras.append(key)
        return None

    def record(self, rel: str) -> dict[str, Any] | None:
        """The verified manifest record of ``rel``: read only once the destination holds some object."""
        return self._records.get(rel)


def _decide(
    d: int,
    dest: Location,
    entry: PlanEntry,
    found: ObjectInfo | None,
    record: dict[str, Any] | None,
    overwrite: Overwrite,
) -> PlanAction:
    if found is not None and (_same_version(entry.obj, found, record) or _same_by_metadata(dest, entry.obj, found)):
        return PlanAction.SKIP
    if found is not None and overwrite is Overwrite.NEVER:
        return PlanAction.CONFLICT
    why = dest.store.key_problem(dest.key(entry.obj.rel))
    if why:
        entry.reasons[d] = why
        return PlanAction.INVALID_KEY
    return PlanAction.COPY


def _report(source: Location, destinations: Sequence[Location], plan: Plan) -> None:
    """Say what the plan leaves out and why: nothing is left out without a word."""
    if plan.reserved:
        log.warning(
            "%d source objects under %s folders were not copied (this tool's own manifests and reports), e.g. %s",
            len(plan.reserved),
            RESERVED_DIR,
            ", ".join(source.key(r) for r in plan.reserved[:5]),
        )
    if plan.unlisted:
        log.warning("%d local entries were not taken as objects: %s", len(plan.unlisted), "; ".join(plan.unlisted[:5]))
    invalid = invalid_keys(plan, destinations)
    if invalid:
        log.warning("%d keys a destination would refuse (not sent): %s", len(invalid), "; ".join(invalid[:20]))


def invalid_keys(plan: Plan, destinations: Sequence[Location]) -> list[str]:
    """``uri (reason)`` for every key the plan found a destination would refuse."""
    return [
        f"{destinations[d].store.uri(destinations[d].key(e.obj.rel))} ({e.reasons.get(d, 'invalid key')})"
        for e in plan.entries
        for d, a in e.actions.items()
        if a == PlanAction.INVALID_KEY
    ]
