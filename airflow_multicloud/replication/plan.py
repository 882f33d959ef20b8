"""Decide, per source object and destination: copy, skip (verified copy of this exact version), conflict, or
invalid key (the destination would refuse it)."""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring_ascii as encode_json_string
from typing import Any

from airflow_multicloud.errors import ObjectNotFoundError
from airflow_multicloud.replication.manifest import (
    DEFAULT_MANIFEST_DIR,
    DELETED,
    RecordCursor,
    is_manifest,
    manifest_prefix,
)
from airflow_multicloud.replication.merge import ahead, order_error
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

    @property
    def takes_everything(self) -> bool:
        """True when no filter is set: every object is taken (the merge then asks nothing per object)."""
        return self.include is None and not self.exclude and self.min_age is None and self.max_age is None

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
    plan = Plan(EntrySpool(), objects=0, bytes=0)
    for entry in plan_entries(source, destinations, plan, filters, overwrite, manifest_dir, now, list_workers):
        plan.entries.append(entry)
    return plan


def plan_entries(
    source: Location,
    destinations: Sequence[Location],
    plan: Plan,
    filters: Filters | None = None,
    overwrite: Overwrite = Overwrite.IF_CHANGED,
    manifest_dir: str = DEFAULT_MANIFEST_DIR,
    now: datetime | None = None,
    list_workers: int = 1,
) -> Iterator[PlanEntry]:
    """The merge of :func:`plan_copy`, yielding each entry as it is decided; ``plan`` gathers the rest (counts,
    extras, manifests listed, reserved and unlisted keys), complete once the generator is exhausted."""
    filters = filters or Filters()
    now = now or datetime.now(UTC)
    everything = filters.takes_everything
    # a destination's manifests are listed first (one small folder) so their records stream in key order too
    names = [_manifest_names(dest, manifest_dir) for dest in destinations]
    sides = [_Side(dest, manifest_dir, names[d], plan.unlisted, list_workers) for d, dest in enumerate(destinations)]
    for d, side in enumerate(sides):
        plan.manifests[d], plan.skipped[d], plan.extras[d] = names[d], 0, []
        side.extras, side.filters = plan.extras[d], filters
    # every side is listed at once: a listing is a chain of page requests, mostly waiting on the store
    listed = ahead(list_dataset(source, plan.reserved, plan.unlisted, list_workers), f"list {source.uri}")
    start, last = len(source.prefix), ""
    for info in listed:
        key = info.key
        if key < last:
            raise order_error(source.uri, source.prefix, key, last)
        last, rel = key, key[start:]
        # filtered-out objects still belong to the source: they are never extras
        found = [side.until(rel) for side in sides]
        if not everything and not filters.accepts(rel, info.last_modified, now):
            continue
        plan.objects += 1
        plan.bytes += info.size
        lines = [side.record(rel) if f is not None else None for side, f in zip(sides, found, strict=True)]
        # the usual rerun: every destination holds this version, as its manifest says; nothing else to do
        if _quick_same(info, found, lines):
            for d in plan.skipped:
                plan.skipped[d] += 1
            continue
        entry = PlanEntry(SourceObject(rel, info.size, info.etag, info.last_modified, info.crc64), {})
        records = [_parsed(line, dest) for line, dest in zip(lines, destinations, strict=True)]
        for d, dest in enumerate(destinations):
            entry.actions[d] = _decide(d, dest, entry, found[d], records[d], overwrite)
        if all(a == PlanAction.SKIP and records[d] is not None for d, a in entry.actions.items()):
            for d in entry.actions:  # the manifest chain holds each record already: nothing to keep
                plan.skipped[d] += 1
            continue
        entry.previous = {d: record for d, record in enumerate(records) if record is not None}
        yield entry
    for side in sides:
        side.until(None)
    _report(source, destinations, plan)


#: a tombstone's status as the manifest writer serialises it (sorted keys, ``json`` separators)
_TOMBSTONE = f'"status": "{DELETED}"'


def _quick_same(info: ObjectInfo, found: list[ObjectInfo | None], lines: list[str | None]) -> bool:
    """:func:`_same_version` at every destination, read off the serialised records without parsing them, where
    it can say yes: each record holds this exact size, source ETag and replica ETag. A field is matched with its
    JSON encoding and what follows it, and a quote inside a JSON string is escaped, so a match can only be the
    field itself. False sends the object through the full decision, which parses the records."""
    if not info.etag:
        return False
    size, etag = f'"size": {info.size},', f'"source_etag": {encode_json_string(info.etag)},'
    for dest, line in zip(found, lines, strict=True):
        if line is None or dest is None or not dest.etag or dest.size != info.size:
            return False
        if size not in line or etag not in line or f'"dest_etag": {encode_json_string(dest.etag)},' not in line:
            return False
        if _TOMBSTONE in line:
            return False
    return True


def _parsed(line: str | None, dest: Location) -> dict[str, Any] | None:
    """A serialised record parsed; one that does not parse is no record (a HEAD or a copy, never a wrong skip)."""
    if line is None:
        return None
    try:
        record = json.loads(line)
    except ValueError as exc:
        log.warning("ignoring an unreadable manifest record of %s: %s", dest.uri, exc)
        return None
    return record if isinstance(record, dict) and record.get("status") != DELETED else None


def _manifest_names(dest: Location, manifest_dir: str) -> list[str]:
    return [o.key for o in dest.store.list(manifest_prefix(dest, manifest_dir)) if is_manifest(o.key)]


class _Side:
    """One destination as the merge passes it: its listing and its manifest records, both in key order."""

    extras: list[str]
    filters: Filters

    def __init__(
        self, dest: Location, manifest_dir: str, names: list[str], unlisted: list[str], list_workers: int
    ) -> None:
        self.dest = dest
        self._start = len(dest.prefix)
        self._objects = ahead(list_dataset(dest, None, unlisted, list_workers), f"list {dest.uri}")
        self.record = RecordCursor(dest, manifest_dir, names).line
        """The serialised manifest record of ``rel``: asked only once the destination holds some object."""
        self._info: ObjectInfo | None = None
        self._rel: str | None = None  # the relative key of ``_info``, the next object not passed yet
        self._advance()

    def _advance(self) -> None:
        last = self._info.key if self._info is not None else ""
        info = self._info = next(self._objects, None)
        if info is None:
            self._rel = None
            return
        if info.key < last:
            raise order_error(self.dest.uri, self.dest.prefix, info.key, last)
        self._rel = info.key[self._start :]

    def until(self, rel: str | None) -> ObjectInfo | None:
        """Pass the destination objects before ``rel`` (extras where the globs take them in); return ``rel``'s."""
        if (key := self._rel) == rel and key is not None:  # a rerun's usual step: the very next object
            info = self._info
            self._advance()
            return info
        while key is not None:
            if rel is not None and key >= rel:
                if key == rel:
                    info = self._info
                    self._advance()
                    return info
                return None
            self._advance()
            if self.filters.matches(key):
                self.extras.append(key)
            key = self._rel
        return None


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
