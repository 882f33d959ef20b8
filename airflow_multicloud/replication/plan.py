"""Decide, per source object and destination: copy, skip (verified copy of this exact version), or conflict."""

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
    PlanEntry,
    SourceObject,
)
from airflow_multicloud.stores.base import ObjectInfo, normalize_etag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Filters:
    """Which source objects take part. Globs match the key relative to the source prefix.

    :param include: keep only keys matching one of these globs (None: all).
    :param exclude: drop keys matching any of these globs.
    :param min_age: only objects last modified at least this long ago (skip files still being written).
    :param max_age: only objects last modified at most this long ago.
    """

    include: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    min_age: timedelta | None = None
    max_age: timedelta | None = None

    def accepts(self, rel: str, modified: datetime | None, now: datetime) -> bool:
        if self.include is not None and not any(fnmatch.fnmatchcase(rel, g) for g in self.include):
            return False
        if any(fnmatch.fnmatchcase(rel, g) for g in self.exclude):
            return False
        if modified is not None:
            age = now - modified
            if self.min_age is not None and age < self.min_age:
                return False
            if self.max_age is not None and age > self.max_age:
                return False
        return True


def list_dataset(loc: Location) -> Iterator[ObjectInfo]:
    """Objects of a dataset, without our own ``_multicloud/`` folder (manifests, reports)."""
    for info in loc.store.list(loc.prefix):
        if not _reserved(info.key[len(loc.prefix) :]):
            yield info


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

    def listed(dest: Location) -> tuple[dict[str, ObjectInfo], dict[str, dict[str, Any]]]:
        # one listing of the destination prefix gives both its objects and its manifests' names
        manifests = manifest_prefix(dest, manifest_dir)
        existing: dict[str, ObjectInfo] = {}
        names: list[str] = []
        for info in dest.store.list(dest.prefix):
            rel = info.key[len(dest.prefix) :]
            if info.key.startswith(manifests):
                names.append(info.key)
            elif not _reserved(rel):
                existing[rel] = info
        return existing, (read_previous(dest, manifest_dir, names) if existing else {})

    # every side is listed at once: a listing is a chain of page requests, mostly waiting on the store
    with ThreadPoolExecutor(max_workers=len(destinations) or 1, thread_name_prefix="list") as pool:
        futures = [pool.submit(listed, dest) for dest in destinations]
        objects = [
            SourceObject(i.key[len(source.prefix) :], i.size, i.etag, i.last_modified, i.crc64)
            for i in list_dataset(source)
            if filters.accepts(i.key[len(source.prefix) :], i.last_modified, now)
        ]
        listings = [f.result() for f in futures]
    plan = Plan([PlanEntry(o, {}) for o in objects])
    wanted = {o.rel for o in objects}
    for d, dest in enumerate(destinations):
        existing, previous = listings[d]
        plan.previous[d] = previous
        for entry in plan.entries:
            found = existing.get(entry.obj.rel)
            if found is None:
                entry.actions[d] = "copy"
            elif _same_version(entry.obj, found, previous.get(entry.obj.rel)) or _same_by_metadata(
                dest, entry.obj, found
            ):
                entry.actions[d] = "skip"
            else:
                entry.actions[d] = "conflict" if overwrite is Overwrite.NEVER else "copy"
        plan.extras[d] = sorted(
            rel for rel in existing if rel not in wanted and filters.accepts(rel, existing[rel].last_modified, now)
        )
    return plan
