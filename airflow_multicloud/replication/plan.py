"""Decide, per source object and destination: copy, skip (verified copy of this exact version), conflict, or
invalid key (the destination would refuse it)."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_multicloud.errors import ObjectNotFoundError
from airflow_multicloud.replication.manifest import DEFAULT_MANIFEST_DIR, manifest_prefix, read_previous
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
    loc: Location, reserved: list[str] | None = None, unlisted: list[str] | None = None
) -> Iterator[ObjectInfo]:
    """Objects of a dataset, without our own ``_multicloud/`` folders (manifests, reports).

    ``reserved`` collects the relative keys left out for being in such a folder, ``unlisted`` the entries a
    local store saw but does not list (see :meth:`ObjectStore.list_noting`).
    """
    for info in loc.store.list_noting(loc.prefix, [] if unlisted is None else unlisted):
        rel = info.key[len(loc.prefix) :]
        if not _reserved(rel):
            yield info
        elif reserved is not None:
            reserved.append(rel)


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
) -> Plan:
    """List the source and every destination once and decide what to do with each object."""
    filters = filters or Filters()
    now = now or datetime.now(UTC)

    def listed(dest: Location) -> tuple[dict[str, ObjectInfo], dict[str, dict[str, Any]], list[str]]:
        # one listing of the destination prefix gives both its objects and its manifests' names
        manifests = manifest_prefix(dest, manifest_dir)
        existing: dict[str, ObjectInfo] = {}
        names: list[str] = []
        skipped: list[str] = []
        for info in dest.store.list_noting(dest.prefix, skipped):
            rel = info.key[len(dest.prefix) :]
            if info.key.startswith(manifests):
                names.append(info.key)
            elif not _reserved(rel):
                existing[rel] = info
        return existing, (read_previous(dest, manifest_dir, names) if existing else {}), skipped

    # every side is listed at once: a listing is a chain of page requests, mostly waiting on the store
    reserved: list[str] = []
    unlisted: list[str] = []
    with ThreadPoolExecutor(max_workers=len(destinations) or 1, thread_name_prefix="list") as pool:
        futures = [pool.submit(listed, dest) for dest in destinations]
        # filtered-out objects still belong to the source: the whole listing decides what is an extra
        everything = [
            SourceObject(i.key[len(source.prefix) :], i.size, i.etag, i.last_modified, i.crc64)
            for i in list_dataset(source, reserved, unlisted)
        ]
        listings = [f.result() for f in futures]
    objects = [o for o in everything if filters.accepts(o.rel, o.last_modified, now)]
    plan = Plan([PlanEntry(o, {}) for o in objects], reserved=reserved, unlisted=unlisted)
    at_source = {o.rel for o in everything}
    for d, dest in enumerate(destinations):
        existing, previous, dest_unlisted = listings[d]
        plan.previous[d] = previous
        plan.unlisted.extend(dest_unlisted)
        for entry in plan.entries:
            entry.actions[d] = _decide(d, dest, entry, existing.get(entry.obj.rel), previous, overwrite)
        plan.extras[d] = sorted(rel for rel in existing if rel not in at_source and filters.matches(rel))
    _report(source, destinations, plan)
    return plan


def _decide(
    d: int, dest: Location, entry: PlanEntry, found: ObjectInfo | None, previous: dict[str, Any], overwrite: Overwrite
) -> PlanAction:
    if found is not None and (
        _same_version(entry.obj, found, previous.get(entry.obj.rel)) or _same_by_metadata(dest, entry.obj, found)
    ):
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
