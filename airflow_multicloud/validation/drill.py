"""Restore drill: copy one night's replica to a scratch location and prove the restored bytes against that night's
manifest, not against the replica as it is now (a replica overwritten since would then prove itself).

Every object the manifest records is streamed from the replica to the scratch location; the CRC64 and size of
the bytes restored are computed on the way (the store's write does) and the scratch store's answer is checked
against them. Each must equal the manifest record. Where asked, the rows of each restored data file are counted
and compared with the rows the night's validation recorded for the source. Time to restore is measured over
the copying alone.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_multicloud.errors import IntegrityError, MulticloudError, StoreError
from airflow_multicloud.replication.manifest import DEFAULT_MANIFEST_DIR, iter_previous, manifest_prefix
from airflow_multicloud.replication.merge import Peekable, ordered
from airflow_multicloud.replication.model import Location
from airflow_multicloud.replication.plan import list_dataset
from airflow_multicloud.stores.base import MiB, ObjectInfo, normalize_etag, verify_write
from airflow_multicloud.validation.content import format_of
from airflow_multicloud.validation.report import DEFAULT_REPORT_DIR, Difference
from airflow_multicloud.validation.rows import count_rows
from airflow_multicloud.validation.sources import StoreSource

log = logging.getLogger(__name__)


@dataclass
class DrillReport:
    """What a restore drill restored, how fast, and every object that does not match that night's manifest."""

    replica: str
    scratch: str
    manifest: str
    recorded: int = 0
    objects: int = 0
    bytes: int = 0
    restore_s: float = 0.0
    bytes_per_s: float = 0.0
    rows: int | None = None
    failures: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self, max_failures: int = 50) -> dict[str, Any]:
        """Small enough for XCom: totals and the first ``max_failures`` failures, never one line per object."""
        head = {k: v for k, v in asdict(self).items() if k != "failures"}
        return {
            **head,
            "ok": self.ok,
            "failed": len(self.failures),
            "failures": [asdict(d) for d in self.failures[:max_failures]],
        }

    def summary(self, max_failures: int = 20) -> str:
        rows = "" if self.rows is None else f", {self.rows:,} rows"
        lines = [
            f"Restore drill of {self.replica} to {self.scratch}: {self.objects:,} objects, {self.bytes:,} bytes{rows}"
            f" restored in {self.restore_s:.1f} s ({self.bytes_per_s / 1e6:,.1f} MB/s); {self.recorded:,} recorded"
            f" in {self.manifest} -> {'OK' if self.ok else f'{len(self.failures)} FAILED'}"
        ]
        lines += [f"  {d.line()}" for d in self.failures[:max_failures]]
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {len(self.failures) - max_failures:,} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Restored:
    rel: str
    size: int
    crc64: int
    md5: str


def restore_drill(
    replica: Location,
    scratch: Location,
    *,
    count_rows: bool = False,
    formats: Mapping[str, str] | None = None,
    workers: int = 8,
    manifest_dir: str = DEFAULT_MANIFEST_DIR,
    report_dir: str = DEFAULT_REPORT_DIR,
    chunk_size: int = MiB,
) -> DrillReport:
    """Restore ``replica`` into ``scratch`` and prove every object against the replica's newest manifests.

    :param count_rows: also count the rows of each restored data file; where the night's validation report (in
        ``<replica>/<report_dir>``) recorded the source's rows for a file, they must be equal.
    :raises ValueError: the replica holds no manifest (nothing to prove a restore against).
    """
    if workers < 1:
        raise ValueError(f"workers={workers} must be at least 1")
    records = Peekable(iter_previous(replica, manifest_dir))
    where = replica.store.uri(manifest_prefix(replica, manifest_dir))
    if records.peek() is None:
        raise ValueError(
            f"no manifest with verified objects under {where}: this replica was not written by a replication run "
            "(or its manifests were removed), so there is nothing to prove a restore against"
        )
    listing = Peekable(ordered(list_dataset(replica), replica.uri, replica.prefix))
    report = DrillReport(replica.uri, scratch.uri, where)
    restored: list[str] = []  # kept only to count rows afterwards
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="restore") as pool:
        # both streams in key order: restores go out as the keys pass, at most twice ``workers`` in flight
        flight: deque[tuple[dict[str, Any], Future[_Restored | Difference]]] = deque()
        for rel, record, info in _paired(records, listing, replica.prefix, report):
            if record is None or info is None:
                continue
            flight.append((record, pool.submit(_restore, replica, scratch, rel, chunk_size)))
            if len(flight) >= 2 * workers:
                _take(report, *flight.popleft(), restored if count_rows else None)
        while flight:
            _take(report, *flight.popleft(), restored if count_rows else None)
        report.restore_s = round(time.monotonic() - started, 3)
        report.bytes_per_s = round(report.bytes / max(report.restore_s, 1e-9), 1)
        if count_rows:
            _rows(report, replica, scratch, restored, formats, report_dir, pool)
    report.failures.sort(key=lambda d: d.key)
    log.info("%s", report.summary())
    return report


def _paired(
    records: Peekable[tuple[str, dict[str, Any]]], listing: Peekable[ObjectInfo], prefix: str, report: DrillReport
) -> Iterator[tuple[str, dict[str, Any] | None, ObjectInfo | None]]:
    """The manifest's records and the replica's listing merged by key: ``(rel, record, listed)``, either one None
    where the other side lacks the key (each counted, and reported missing or extra, on the way)."""
    while True:
        rec, info = records.peek(), listing.peek()
        listed = None if info is None else info.key[len(prefix) :]
        if rec is None and info is None:
            return
        if info is not None and listed is not None and (rec is None or listed < rec[0]):
            next(listing)
            report.failures.append(Difference(listed, "extra", None, info.size, "no verified record in the manifest"))
            yield listed, None, info
            continue
        assert rec is not None  # the listing is done with, or ahead of, this record
        next(records)
        report.recorded += 1
        if listed != rec[0]:
            why = "recorded in the manifest, absent from the replica"
            report.failures.append(Difference(rec[0], "missing", rec[1].get("size"), None, why))
            yield rec[0], rec[1], None
            continue
        next(listing)
        yield rec[0], rec[1], info


def _take(
    report: DrillReport, record: dict[str, Any], future: Future[_Restored | Difference], restored: list[str] | None
) -> None:
    got = future.result()
    if isinstance(got, Difference):
        report.failures.append(got)
        return
    report.objects += 1
    report.bytes += got.size
    report.failures += _against_record(record, got)
    if restored is not None:
        restored.append(got.rel)


def _restore(replica: Location, scratch: Location, rel: str, chunk_size: int) -> _Restored | Difference:
    try:
        sent = scratch.store.write(scratch.key(rel), replica.store.read(replica.key(rel), chunk_size=chunk_size))
        verify_write(scratch.store, sent)
    except IntegrityError as exc:  # e.g. OSS checks its stored CRC64 while we read: the stored bytes are damaged
        return Difference(rel, "checksum", None, f"{type(exc).__name__}: {exc}", "restore read or write check")
    except StoreError as exc:
        return Difference(rel, "unreadable", None, f"{type(exc).__name__}: {exc}", "restore failed")
    return _Restored(rel, sent.size, sent.crc64, normalize_etag(sent.md5))


def _against_record(record: Mapping[str, Any], got: _Restored) -> list[Difference]:
    """Size, then CRC64 (or the MD5 where the record holds no CRC64): the first one that differs."""
    if record.get("size") != got.size:
        return [Difference(got.rel, "size", record.get("size"), got.size, "restored bytes differ from the manifest")]
    crc, md5 = record.get("crc64"), normalize_etag(record.get("md5"))
    if isinstance(crc, str):
        if crc.lower() != f"{got.crc64:016x}":
            return [
                Difference(
                    got.rel, "checksum", f"crc64 {crc}", f"crc64 {got.crc64:016x}", "replica changed since the copy"
                )
            ]
        return []
    if md5 and got.md5:
        if md5 != got.md5:
            return [Difference(got.rel, "checksum", f"md5 {md5}", f"md5 {got.md5}", "replica changed since the copy")]
        return []
    return [Difference(got.rel, "unverified", None, None, "the manifest records no CRC64 or MD5 for this object")]


def _rows(
    report: DrillReport,
    replica: Location,
    scratch: Location,
    rels: list[str],
    formats: Mapping[str, str] | None,
    report_dir: str,
    pool: ThreadPoolExecutor,
) -> None:
    expected = _recorded_rows(replica, report_dir)
    restored = {i.key[len(scratch.prefix) :]: i for i in list_dataset(scratch)}
    data = [(rel, fmt) for rel in rels if rel in restored and (fmt := format_of(rel, formats)) is not None]

    def one(item: tuple[str, Any]) -> int | str:
        rel, fmt = item
        try:
            return count_rows(StoreSource(scratch.store, scratch.key(rel), restored[rel].size), fmt).rows
        except (MulticloudError, OSError, ValueError) as exc:
            return str(exc)

    report.rows = 0
    for (rel, _), got in zip(data, pool.map(one, data), strict=True):
        if isinstance(got, str):
            report.failures.append(Difference(rel, "unreadable", None, got, "restored file cannot be parsed"))
            continue
        report.rows += got
        want = expected.get(rel)
        if want is not None and want != got:
            report.failures.append(Difference(rel, "rows", want, got, "rows of the source recorded that night"))


def _recorded_rows(replica: Location, report_dir: str) -> dict[str, int]:
    """Source rows per file from the newest validation report of ``replica`` that counted them ({} if none)."""
    prefix = replica.prefix + report_dir
    names = sorted((i.key for i in replica.store.list(prefix) if i.key.endswith(".json")), reverse=True)
    for name in names:
        try:
            saved = json.loads(b"".join(replica.store.read(name)))
        except (StoreError, ValueError) as exc:
            log.warning("ignoring unreadable report %s: %s", replica.store.uri(name), exc)
            continue
        for rep in saved.get("replicas") or []:
            files = rep.get("files") if rep.get("uri") == replica.uri else None
            if files:
                return {rel: v["source_rows"] for rel, v in files.items() if isinstance(v.get("source_rows"), int)}
    return {}
