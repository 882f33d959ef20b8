"""What the plan, validation and the drill read per object stays off the heap: a first copy's plan entries are
spooled to a file, manifest records are looked up as a stream in key order, and full validation still fails a
recorded checksum that contradicts the replica's bytes when it reads the records that way."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_multicloud.replication.engine import ReplicationOptions, replicate
from airflow_multicloud.replication.manifest import Kind, ManifestWriter, RecordCursor, manifest_key, read_previous
from airflow_multicloud.replication.model import Location, PlanAction, PlanEntry, SourceObject
from airflow_multicloud.replication.plan import plan_copy
from airflow_multicloud.replication.spool import EntrySpool
from airflow_multicloud.stores.base import ObjectInfo
from airflow_multicloud.stores.local import LocalStore
from airflow_multicloud.validation.compare import compare_replicas

N = 10_000
STAMP = datetime(2026, 1, 1, tzinfo=UTC)


def loc(path: Path) -> Location:
    path.mkdir(exist_ok=True)
    return Location(LocalStore(str(path)), "")


def test_a_spool_gives_its_entries_back_as_often_as_asked() -> None:
    spool = EntrySpool()
    entries = [
        PlanEntry(
            SourceObject(f"k{i:05d}é", i, f"e{i}", STAMP if i % 2 else None, i * 7 if i % 3 else None),
            {0: PlanAction.COPY, 1: PlanAction.SKIP if i % 5 else PlanAction.INVALID_KEY},
            {1: "too long"} if i % 5 == 0 else {},
            {1: {"key": f"k{i:05d}é", "crc64": f"{i:016x}"}} if i % 5 else {},
        )
        for i in range(3000)  # more than one write and one read chunk
    ]
    assert not spool
    for e in entries:
        spool.append(e)
    assert len(spool) == 3000 and spool
    assert list(spool) == entries
    two = iter(spool)  # iterations read on their own offsets: they can interleave
    assert [next(two) for _ in range(2)] == entries[:2] and list(spool) == entries and next(two) == entries[2]
    spool.close()


class _Generated(LocalStore):
    """A folder that also lists ``N`` generated objects, without holding them anywhere."""

    def list_noting(self, prefix: str, unlisted: list[str]) -> Iterator[ObjectInfo]:
        for i in range(N):
            yield ObjectInfo(f"obj-{i:07d}.parquet", 1000 + i, f"{i:032x}", STAMP)


class _Empty(LocalStore):
    """An empty folder that takes every key (no path check per key: the test measures the plan, not the disk)."""

    def key_problem(self, key: str) -> str | None:
        return None


def test_a_first_copy_plan_spools_its_entries_instead_of_holding_them(tmp_path: Path) -> None:
    for name in ("src", "a", "b"):
        (tmp_path / name).mkdir()
    source = Location(_Generated(str(tmp_path / "src")), "")
    gc.collect()
    tracemalloc.start()
    try:
        plan = plan_copy(source, [Location(_Empty(str(tmp_path / d)), "") for d in "ab"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (plan.objects, len(plan.entries), plan.count("copy")) == (N, N, 2 * N)
    first = next(iter(plan.entries))
    assert (first.obj.rel, first.obj.size, first.actions) == ("obj-0000000.parquet", 1000, {0: "copy", 1: "copy"})
    # held as entries, 10,000 of them took ~10 MB; the listing read ahead and the spool's buffer take a few
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def _record(key: str, **extra: object) -> dict[str, object]:
    return {"key": key, "size": 1, "status": "copied", "crc64": "0", "dest_etag": "e", **extra}


def test_records_stream_in_key_order_newest_first_and_out_of_order_lookups_are_refused(tmp_path: Path) -> None:
    dest = loc(tmp_path / "dst")
    base = ManifestWriter(dest, manifest_key(dest, "r1", Kind.CONSOLIDATED), {"kind": "consolidated"})
    for key in ("a", "b", "c", "d"):
        base.add(_record(key))
    base.upload()
    newer = ManifestWriter(dest, manifest_key(dest, "r2", Kind.RUN), {"kind": "run"})
    for rec in (_record("c", crc64="new"), {"key": "b", "status": "deleted"}, _record("e")):  # not in key order
        newer.add(rec)
    newer.upload()
    cursor = RecordCursor(dest)
    got = {k: (r or {}).get("crc64") for k in ("a", "b", "bb", "c", "e", "f") if (r := cursor.get(k)) or True}
    assert got == {"a": "0", "b": None, "bb": None, "c": "new", "e": "0", "f": None}
    with pytest.raises(ValueError, match="out of key order"):
        cursor.get("d")
    assert sorted(read_previous(dest)) == ["a", "c", "d", "e"]


def test_full_validation_fails_a_recorded_checksum_the_replica_bytes_contradict(tmp_path: Path) -> None:
    src, dst = loc(tmp_path / "src"), loc(tmp_path / "dst")
    for i in range(5):
        src.store.write(f"f{i}.bin", [b"data %d" % i])
    replicate(src, [dst], ReplicationOptions(progress_interval=0))
    assert compare_replicas(src, [dst], level="full").ok
    wrong = {**read_previous(dst)["f3.bin"], "crc64": "0123456789abcdef"}  # same replica version, wrong checksum
    writer = ManifestWriter(dst, manifest_key(dst, "later", Kind.RUN), {"kind": "run"})
    writer.add(wrong)
    writer.upload()
    report = compare_replicas(src, [dst], level="full")
    rep = report.replicas[0]
    assert not report.ok and (rep.passed, rep.failed) == (4, 1)
    assert [(d.key, d.kind) for d in rep.differences] == [("f3.bin", "checksum")]
    assert "recorded crc64 0123456789abcdef" in str(rep.differences[0].replica)


class _Ranged(LocalStore):
    """A folder taken for a cloud store (ranges are listed only there), counting the ranges listed."""

    scheme = "ranged"
    ranges = 0

    def list_after(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        type(self).ranges += 1
        return super().list_after(prefix, start_after)


def test_listing_in_key_ranges_gives_the_plan_the_same_decisions(tmp_path: Path) -> None:
    src, dst = loc(tmp_path / "src"), loc(tmp_path / "dst")
    for i, name in enumerate(["0.bin", "1/a", "5x", "a/b/c", "m", "z~", "ü.bin", "_x"]):
        src.store.write(name, [b"%d" % i])
    replicate(src, [dst], ReplicationOptions(progress_interval=0))
    src.store.write("m", [b"changed"])
    dst.store.write("extra", [b"only here"])
    ranged = [Location(_Ranged(str(tmp_path / p)), "") for p in ("src", "dst")]

    def decisions(workers: int) -> tuple[object, ...]:
        plan = plan_copy(ranged[0], ranged[1:], list_workers=workers)
        return plan.objects, plan.skipped, plan.extras, [(e.obj.rel, e.actions) for e in plan.entries]

    one = decisions(1)
    assert _Ranged.ranges == 0 and one[3] == [("m", {0: PlanAction.COPY})] and one[2] == {0: ["extra"]}
    assert decisions(4) == one and _Ranged.ranges > 2  # both sides listed as ranges
