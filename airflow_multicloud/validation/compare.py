"""Compare a dataset with its replicas: objects (missing, extra, size, checksum), then optionally rows and
Great Expectations suites.

``quick`` reads no object data. It lists each side once and reads the replica's newest manifests; an object is
settled from the listings and the manifest alone where they hold comparable checksums tied to the current
versions (a manifest only where its copy proved the source: see :mod:`~airflow_multicloud.validation.evidence`),
and only the rest get a HEAD (replica first, then the source where its native CRC64 could settle it). What
nothing settles is ``unverified``, never passed. Each object passed says, in words, what it passed on.

``full`` re-reads every object on both sides, streaming, and compares CRC64-XZ computed from the bytes: it catches
what recorded checksums cannot see (a flipped byte at equal size, a record that lies). Each source object is read
once whatever the number of replicas; objects are checked ``workers`` at a time, each holding one chunk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

from airflow_multicloud.checksums import Crc64
from airflow_multicloud.errors import IntegrityError, ObjectNotFoundError, StoreError
from airflow_multicloud.replication.manifest import DEFAULT_MANIFEST_DIR, RecordCursor
from airflow_multicloud.replication.model import Location, SourceProof
from airflow_multicloud.replication.plan import list_dataset
from airflow_multicloud.stores.base import MiB, ObjectInfo
from airflow_multicloud.validation import evidence as ev
from airflow_multicloud.validation.report import Difference, ReplicaReport, ValidationReport

log = logging.getLogger(__name__)

LEVELS = ("quick", "full")
RECOMPUTED = "CRC64 recomputed from the bytes of both sides"
T = TypeVar("T")
U = TypeVar("U")


@dataclass
class _Side:
    """One replica while it is being compared: its listing and the keys present on both sides at equal size."""

    loc: Location
    report: ReplicaReport
    listing: dict[str, ObjectInfo]
    comparable: list[str]


def compare_replicas(
    source: Location,
    replicas: Sequence[Location],
    *,
    level: str = "quick",
    workers: int = 8,
    count_rows: bool = False,
    formats: Mapping[str, str] | None = None,
    expectations: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    sample: int | None = None,
    allow_unverified: bool = False,
    allow_empty: bool = False,
    manifest_dir: str = DEFAULT_MANIFEST_DIR,
    max_differences: int = 1000,
    chunk_size: int = MiB,
) -> ValidationReport:
    """Compare ``source`` with each of ``replicas`` and return the report (it does not raise on a mismatch).

    :param level: ``quick`` (listings, manifests, HEADs where needed; no object data) or ``full`` (re-read both
        sides and recompute CRC64).
    :param count_rows: also count rows of every data file on both sides (CSV/TSV/JSON Lines/Parquet, gzip).
    :param formats: glob on the relative key -> format name (``csv``, ``jsonl.gz``...) for row counting and
        expectations; default: by extension, files without a known one are not row-counted.
    :param expectations: run Great Expectations on every data file of each replica: the default suite (row count
        equals the source's; the source's columns and types) plus, per glob on the relative key, declared
        expectations ``{"expectation": "expect_...", "kwargs": {...}}``. ``None``: no expectations.
    :param sample: run the declared expectations on a uniform sample of this many rows per file.
    :param allow_unverified: objects nothing could verify do not make ``report.ok`` False.
    :param allow_empty: an empty source is an error unless this is set (a wrong prefix must not pass as "ok").
    """
    if level not in LEVELS:
        raise ValueError(f"level={level!r} is not supported: use 'quick' or 'full'")
    if not replicas:
        raise ValueError("no replica given: name at least one")
    if workers < 1 or chunk_size < 1:
        raise ValueError("workers and chunk_size must be at least 1")
    started = time.monotonic()
    src_listing = {i.key[len(source.prefix) :]: i for i in list_dataset(source)}
    if not src_listing and not allow_empty:
        raise ValueError(
            f"source {source.uri} holds no objects: check the prefix and the date partition, "
            "or pass allow_empty=True if an empty dataset is expected"
        )
    report = ValidationReport(
        source.uri,
        level,
        objects=len(src_listing),
        bytes=sum(i.size for i in src_listing.values()),
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        allow_unverified=allow_unverified,
        row_counts=count_rows,
        expectations_run=expectations is not None,
    )
    sides = [_object_level(source, src_listing, loc, max_differences) for loc in replicas]
    report.replicas = [s.report for s in sides]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="validate") as pool:
        if level == "quick":
            heads = _HeadCache(source)
            for side in sides:
                _quick(source, src_listing, side, pool, heads, manifest_dir)
        else:
            _full(source, src_listing, sides, pool, chunk_size, manifest_dir)
        if count_rows or expectations is not None:
            from airflow_multicloud.validation.content import check_content

            report.rows = check_content(
                source,
                src_listing,
                [(s.loc, s.listing, s.report) for s in sides],
                pool,
                count_rows=count_rows,
                formats=formats,
                expectations=expectations,
                sample=sample,
            )
    report.duration_s = round(time.monotonic() - started, 3)
    log.info("validated %s against %d replica(s) in %.1f s: %s", source.uri, len(replicas), report.duration_s,
             "ok" if report.ok else "MISMATCH")  # fmt: skip
    return report


def _object_level(source: Location, src: dict[str, ObjectInfo], loc: Location, max_diffs: int) -> _Side:
    """Missing, extra and size differences from the two listings; the rest is for the checksum pass."""
    listing = {i.key[len(loc.prefix) :]: i for i in list_dataset(loc)}
    rep = ReplicaReport(loc.uri, len(listing), sum(i.size for i in listing.values()), max_differences=max_diffs)
    comparable = []
    for rel, info in src.items():
        found = listing.get(rel)
        if found is None:
            rep.failed += 1
            rep.add(Difference(rel, "missing", info.size, None, "absent from the replica"))
        elif found.size != info.size:
            rep.failed += 1
            rep.add(Difference(rel, "size", info.size, found.size, "sizes in bytes differ"))
        else:
            comparable.append(rel)
    for rel in listing.keys() - src.keys():
        rep.add(Difference(rel, "extra", None, listing[rel].size, "absent from the source"))
    rep.differences.sort(key=lambda d: (d.kind != "missing", d.key))
    comparable.sort()  # in key order, as the manifest records stream
    return _Side(loc, rep, listing, comparable)


class _HeadCache:
    """Source HEADs, shared by every replica's checks (each source object is asked at most once)."""

    def __init__(self, loc: Location) -> None:
        self.loc = loc
        self._cache: dict[str, ObjectInfo | None] = {}
        self._lock = threading.Lock()

    def get(self, rel: str) -> ObjectInfo | None:
        with self._lock:
            if rel in self._cache:
                return self._cache[rel]
        try:
            info: ObjectInfo | None = self.loc.store.head(self.loc.key(rel))
        except ObjectNotFoundError:
            info = None
        with self._lock:
            self._cache[rel] = info
        return info


def _record(side: _Side, rel: str, verdict: ev.Verdict) -> None:
    rep = side.report
    if verdict.status == "passed":
        rep.passed += 1
        rep.method(verdict.method)
        rep.evidence[rel] = verdict.evidence
    elif verdict.status == "failed":
        rep.failed += 1
        rep.method(verdict.method)
        rep.add(Difference(rel, "checksum", verdict.source_value, verdict.replica_value, verdict.method))
    elif verdict.status == "missing":
        rep.failed += 1
        rep.add(Difference(rel, "missing", None, None, verdict.method))
    else:
        rep.unverified += 1
        rep.add(Difference(rel, "unverified", None, None, verdict.method or "no comparable checksum on both sides"))


class _Undecided(NamedTuple):
    rel: str
    source: list[ev.Claim]
    replica: list[ev.Claim]
    proof: SourceProof | None
    note: str


def _quick(
    source: Location,
    src: dict[str, ObjectInfo],
    side: _Side,
    pool: ThreadPoolExecutor,
    heads: _HeadCache,
    manifest_dir: str,
) -> None:
    manifest = RecordCursor(side.loc, manifest_dir)  # read as the keys pass, never held whole
    undecided: list[_Undecided] = []
    for rel in side.comparable:  # first pass: no request at all
        s, r, record = src[rel], side.listing[rel], manifest.get(rel)
        m = ev.manifest_claims(record, s, r)
        sc = ev.listing_claims(source.store, s) + m.source
        rc = ev.listing_claims(side.loc.store, r) + m.replica
        verdict = ev.decide(sc, rc)
        if verdict.status == "none":
            proof = ev.source_proof(record) if record and not ev.replica_changed(record, r) else None
            undecided.append(_Undecided(rel, sc, rc, proof, m.note))
        else:
            _record(side, rel, verdict)

    def with_heads(item: _Undecided) -> ev.Verdict:
        try:
            head = side.loc.store.head(side.loc.key(item.rel))
        except ObjectNotFoundError:
            return ev.Verdict("missing", "deleted from the replica during validation")
        hs, hr = ev.replica_metadata_claims(side.loc.store, head, src[item.rel], item.proof)
        sc, rc = item.source + hs, item.replica + hr
        verdict = ev.decide(sc, rc)
        # The source's HEAD only helps when the replica has a CRC64 and the source none yet (native CRC64, or our
        # metadata when the source is itself a copy).
        if verdict.status == "none" and ev.has_algo(rc, "crc64") and not ev.has_algo(sc, "crc64"):
            src_head = heads.get(item.rel)
            if src_head is None:
                return ev.Verdict("none", "deleted from the source during validation")
            verdict = ev.decide(sc + ev.source_head_claims(source.store, src_head), rc)
        if verdict.status == "none" and item.note:
            return ev.Verdict("none", f"no comparable checksum on both sides; {item.note}")
        return verdict

    if undecided:
        log.info("%s: %d objects need a HEAD to compare checksums", side.loc.uri, len(undecided))
    for item, verdict in zip(undecided, _ordered_map(pool, with_heads, undecided), strict=True):
        _record(side, item.rel, verdict)


def _ordered_map(pool: ThreadPoolExecutor, fn: Callable[[T], U], items: Sequence[T]) -> list[U]:
    return list(pool.map(fn, items))


# ---- full ------------------------------------------------------------------------------------------------
def crc64_of(loc: Location, rel: str, chunk_size: int = MiB) -> tuple[int, int]:
    """(CRC64-XZ, bytes) of an object, streamed: memory is one chunk."""
    crc = Crc64()
    for chunk in loc.store.read(loc.key(rel), chunk_size=chunk_size):
        crc.update(chunk)
    return crc.value, crc.size


@dataclass(frozen=True)
class _Outcome:
    status: str  # passed | failed | unreadable
    diffs: tuple[Difference, ...] = ()
    crc64: int = 0  # of the replica's bytes, when they matched the source's


def _full(
    source: Location,
    src: dict[str, ObjectInfo],
    sides: list[_Side],
    pool: ThreadPoolExecutor,
    chunk_size: int,
    manifest_dir: str,
) -> None:
    wanted: dict[str, list[int]] = {}
    for i, side in enumerate(sides):
        for rel in side.comparable:
            wanted.setdefault(rel, []).append(i)

    def one(rel: str) -> list[tuple[int, _Outcome]]:
        try:
            s_crc, s_size = crc64_of(source, rel, chunk_size)
        except StoreError as exc:
            bad = _Outcome("unreadable", (Difference(rel, "unreadable", _reason(exc), None, "source read failed"),))
            return [(i, bad) for i in wanted[rel]]
        return [(i, _check_replica(sides[i], rel, s_crc, s_size, chunk_size)) for i in wanted[rel]]

    matched: list[tuple[str, int, int]] = []
    rels = sorted(wanted, key=lambda r: -src[r].size)  # largest first: the pool's tail is short objects
    for rel, results in zip(rels, pool.map(one, rels), strict=True):
        for i, outcome in results:
            if outcome.status == "passed":
                matched.append((rel, i, outcome.crc64))
                continue
            sides[i].report.failed += 1
            for d in outcome.diffs:
                sides[i].report.add(d)
    # the manifests streamed in key order, beside the keys whose bytes matched
    cursors = [RecordCursor(s.loc, manifest_dir) for s in sides]
    for rel, i, crc in sorted(matched):
        rep = sides[i].report
        diff = _recorded_mismatch(sides[i], cursors[i].get(rel), rel, crc)
        if diff is None:
            rep.passed += 1
            rep.method("crc64 (recomputed)")
            rep.evidence[rel] = RECOMPUTED
        else:
            rep.failed += 1
            rep.add(diff)


def _check_replica(side: _Side, rel: str, s_crc: int, s_size: int, chunk_size: int) -> _Outcome:
    try:
        r_crc, r_size = crc64_of(side.loc, rel, chunk_size)
    except IntegrityError as exc:  # e.g. OSS checks its stored CRC64 while we read: the stored bytes changed
        return _Outcome("failed", (Difference(rel, "checksum", f"crc64 {s_crc:016x}", _reason(exc), "read check"),))
    except StoreError as exc:
        return _Outcome("failed", (Difference(rel, "unreadable", None, _reason(exc), "replica read failed"),))
    if r_size != s_size:
        return _Outcome("failed", (Difference(rel, "size", s_size, r_size, "bytes read differ"),))
    if r_crc != s_crc:
        diff = Difference(rel, "checksum", f"crc64 {s_crc:016x}", f"crc64 {r_crc:016x}", "recomputed from the bytes")
        return _Outcome("failed", (diff,))
    return _Outcome("passed", crc64=r_crc)


def _recorded_mismatch(side: _Side, record: Mapping[str, Any] | None, rel: str, crc: int) -> Difference | None:
    """The bytes match the source; a recorded checksum that contradicts them would mislead every later quick
    check."""
    recorded = ev.manifest_replica_claims(record, side.listing[rel])
    recorded += [c for c in ev.listing_claims(side.loc.store, side.listing[rel]) if c.algo == "crc64"]
    for claim in recorded:
        if claim.algo == "crc64" and claim.value != f"{crc:016x}":
            return Difference(
                rel, "checksum", f"crc64 {crc:016x}", f"recorded crc64 {claim.value} ({claim.via})",
                "the recorded checksum does not match the replica's bytes",
            )  # fmt: skip
    return None


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
