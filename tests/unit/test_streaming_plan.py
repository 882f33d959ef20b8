"""The plan as a merge of streams: decisions on a mixed dataset with keys whose order is easy to get wrong, and a
no-op rerun of 100,000 objects planned in memory that does not grow with the number of objects."""

from __future__ import annotations

import gc
import heapq
import json
import os
import random
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_multicloud.errors import AccessDeniedError
from airflow_multicloud.replication.copy import CopyOptions
from airflow_multicloud.replication.engine import ReplicationError, ReplicationOptions, replicate
from airflow_multicloud.replication.manifest import Kind, ManifestWriter, manifest_key, record_key
from airflow_multicloud.replication.merge import ListingOrderError
from airflow_multicloud.replication.model import Location, Plan, PlanAction, PlanEntry, SourceObject
from airflow_multicloud.replication.plan import Filters, _parsed, _quick_same, _same_version, plan_copy
from airflow_multicloud.replication.record import KEY_SAMPLE
from airflow_multicloud.replication.spool import EntrySpool
from airflow_multicloud.stores.base import ObjectInfo
from airflow_multicloud.stores.local import LocalStore

# "a-b" < "a/x" < "a0": a folder must sort as "name/", and "é" after every ASCII key (binary UTF-8 order)
TRICKY = ["0.csv", "Z.csv", "a-b", "a.txt", "a/x", "a0", "b/c/d", "é.csv", "z.csv"]


def tree(root: Path, files: dict[str, bytes]) -> Location:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    root.mkdir(exist_ok=True)
    return Location(LocalStore(str(root)), "")


def test_merged_decisions_on_a_mixed_dataset(tmp_path: Path) -> None:
    rng = random.Random(12)
    keys = TRICKY + [f"p{rng.randrange(10**6):06d}/{i}.bin" for i in range(150)]
    src = tree(tmp_path / "src", {k: os.urandom(8) for k in keys})
    dst_root = tmp_path / "dst"
    replicate(src, [tree(dst_root, {})], ReplicationOptions(progress_interval=0))
    state = {k: rng.choice(["same", "changed", "missing", "excluded"]) for k in keys}
    for k, what in state.items():
        if what == "changed":
            (tmp_path / "src" / k).write_bytes(b"changed " + k.encode())
        elif what == "missing":
            (dst_root / k).unlink()
    extras = {"a.", "a/y", "zz/extra", "~tail", "Z0"}
    for k in extras:
        (dst_root / k).parent.mkdir(parents=True, exist_ok=True)
        (dst_root / k).write_bytes(b"extra")
    excluded = [k for k, what in state.items() if what == "excluded"]

    plan = plan_copy(src, [Location(LocalStore(str(dst_root)), "")], filters=Filters(exclude=excluded))

    want = {k: PlanAction.COPY for k, what in state.items() if what in ("changed", "missing")}
    assert {e.obj.rel: e.actions[0] for e in plan.entries} == want
    assert plan.skipped == {0: sum(1 for w in state.values() if w == "same")}
    assert plan.objects == len(keys) - len(excluded) and plan.count("skip") == plan.skipped[0]
    assert plan.extras == {0: sorted(extras)}  # an excluded key is still at the source: never an extra


def test_a_listing_out_of_key_order_is_refused(tmp_path: Path) -> None:
    class Shuffled(LocalStore):
        def list_noting(self, prefix: str, unlisted: list[str]) -> Iterator[ObjectInfo]:
            return iter(sorted(super().list_noting(prefix, unlisted), key=lambda i: i.key, reverse=True))

    tree(tmp_path / "src", {"a": b"1", "b": b"2"})
    with pytest.raises(ListingOrderError, match=r"not in key order \('a' came after 'b'\)"):
        plan_copy(Location(Shuffled(str(tmp_path / "src")), ""), [tree(tmp_path / "dst", {})])


N = 100_000
STAMP = datetime(2026, 1, 1, tzinfo=UTC)


def _key(i: int) -> str:
    return f"part={i // 1000:03d}/obj-{i:07d}.parquet"  # in key order as ``i`` grows


class Generated(LocalStore):
    """A folder (for manifests) that also lists ``N`` generated objects, without holding them anywhere."""

    def __init__(self, root: str, dest: bool) -> None:
        super().__init__(root)
        self.dest = dest

    def _generated(self, prefix: str) -> Iterator[ObjectInfo]:
        for i in range(N) if prefix == "" else ():
            yield ObjectInfo(_key(i), 1000 + i, f"d{i}" if self.dest else f"s{i}", STAMP)

    def list_noting(self, prefix: str, unlisted: list[str]) -> Iterator[ObjectInfo]:
        return heapq.merge(super().list_noting(prefix, unlisted), self._generated(prefix), key=lambda i: i.key)


@pytest.mark.slow  # the 100,000 objects: ~50-75 s on the shared 2-core machine at load 20
def test_a_no_op_rerun_plan_of_100k_objects_holds_nothing_per_object(tmp_path: Path) -> None:
    src_root, dst_root = tmp_path / "src", tmp_path / "dst"
    src_root.mkdir()
    dst_root.mkdir()
    source = Location(Generated(str(src_root), dest=False), "")
    dest = Location(Generated(str(dst_root), dest=True), "")
    # what a first run and its consolidation leave: a key-sorted record of every object's verified copy
    writer = ManifestWriter(dest, manifest_key(dest, "first", Kind.CONSOLIDATED), {"kind": "consolidated"})
    for i in range(N):
        rec = {"key": _key(i), "size": 1000 + i, "source_etag": f"s{i}", "dest_etag": f"d{i}", "status": "copied"}
        writer.add({**rec, "crc64": "1", "verified_by": ["source-md5", "crc64"], "source_proof": "source-md5"})
    writer.upload()
    writer.close()

    gc.collect()
    tracemalloc.start()
    try:
        plan = plan_copy(source, [dest])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (plan.objects, plan.skipped, list(plan.entries), plan.extras) == (N, {0: N}, [], {0: []})
    # the listings read ahead take a few MB; the plan before streaming held ~4 KB per object (~400 MB here)
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_failures_are_counted_with_a_bounded_sample_of_keys(tmp_path: Path) -> None:
    class Refusing(LocalStore):
        """Every read is refused (a permission the source lacks): every copy fails, and nothing is retried."""

        def read(self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 2**20) -> Iterator[bytes]:
            raise AccessDeniedError(f"{key}: access denied")

    files = {f"f{i:03d}": b"x" for i in range(KEY_SAMPLE + 30)}
    tree(tmp_path / "src", files)
    source = Location(Refusing(str(tmp_path / "src")), "")
    opts = ReplicationOptions(progress_interval=0, copy=CopyOptions(object_retries=0, server_side=False))
    with pytest.raises(ReplicationError) as err:
        replicate(source, [tree(tmp_path / "dst", {})], opts)
    summary = err.value.summary
    assert summary.failed == len(files) and len(summary.failed_keys) == KEY_SAMPLE
    assert all("access denied" in k for k in summary.failed_keys)


def test_the_quick_skip_says_yes_only_where_the_parsed_record_does() -> None:
    """The merge reads size and ETags off a serialised record without parsing it: it may say "no" where the full
    decision says "yes" (that object then takes the full path), never the other way round."""
    obj = SourceObject('we"ird/"size": 5,.bin', 5, '"abc"', STAMP)
    dest = ObjectInfo("x/" + obj.rel, 5, '"D1"', STAMP)
    good = {"key": obj.rel, "size": 5, "source_etag": '"abc"', "dest_etag": '"D1"', "status": "copied", "crc64": "1"}
    variants = [
        good,
        {**good, "size": 55},
        {**good, "size": "5"},
        {**good, "source_etag": '"ABC"'},  # the same ETag in other case: only the full decision sees it
        {**good, "source_etag": "abc"},
        {**good, "dest_etag": '"D2"'},
        {**good, "status": "deleted"},
        {"key": obj.rel, "status": "deleted", "note": '"size": 5, "source_etag": "\\"abc\\"",'},
        {k: v for k, v in good.items() if k != "dest_etag"},
        {**good, "error": '"size": 5, "source_etag": "\\"abc\\"", "dest_etag": "\\"D1\\"",', "size": 6},
    ]
    info = ObjectInfo(obj.rel, obj.size, obj.etag, obj.last_modified)
    for record in variants:
        line = json.dumps({"type": "object", **record}, sort_keys=True)
        assert record_key(line) == obj.rel
        parsed = _parsed(line, Location(LocalStore("/nonexistent"), ""))
        full = _same_version(obj, dest, parsed)
        assert not _quick_same(info, [dest], [line]) or full, record
    assert _quick_same(info, [dest], [json.dumps(good, sort_keys=True)])
    assert not _quick_same(info, [dest, None], [json.dumps(good, sort_keys=True), None])


def test_record_keys_are_read_as_json_decodes_them() -> None:
    for key in ["é.csv", 'a"b', "a\\b", "tab\there", "\u2028", "k"]:
        assert record_key(json.dumps({"crc64": "1", "key": key, "size": 1}, sort_keys=True)) == key
        assert record_key(json.dumps({"key": key}, separators=(",", ":"))) == key


def test_a_spooled_plan_counts_its_actions_as_a_plan_of_listed_entries_does() -> None:
    kinds = list(PlanAction)
    entries = [
        PlanEntry(SourceObject(f"k{i:03d}", i, None, None), {0: kinds[i % len(kinds)], 1: kinds[i * 7 % len(kinds)]})
        for i in range(200)
    ]
    spool = EntrySpool()
    for e in entries:
        spool.append(e)
    listed, spooled = Plan(entries, skipped={0: 3, 1: 4}), Plan(spool, skipped={0: 3, 1: 4})
    for action in kinds:
        assert spooled.count(action.value) == listed.count(action.value) > 0
