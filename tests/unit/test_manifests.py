"""Streamed manifests on local folders: the format round-trips, a no-op rerun writes only a header, the chain
is consolidated and pruned as configured, and a rerun after pruning still copies nothing."""

from __future__ import annotations

import json
import random
from pathlib import Path

from airflow_multicloud.replication.consolidate import ManifestRetention
from airflow_multicloud.replication.engine import ReplicationOptions, replicate
from airflow_multicloud.replication.manifest import (
    Kind,
    ManifestWriter,
    is_consolidated,
    manifest_key,
    read_manifest,
    read_previous,
    sorted_lines,
)
from airflow_multicloud.replication.model import Location
from airflow_multicloud.stores.local import LocalStore

MANIFESTS = "_multicloud/manifests/"


def loc(path: Path) -> Location:
    path.mkdir(exist_ok=True)
    return Location(LocalStore(str(path)), "")


def names(dest: Location) -> list[str]:
    return sorted(o.key for o in dest.store.list(MANIFESTS))


def test_a_manifest_round_trips_in_gzip_members(tmp_path: Path) -> None:
    dest = loc(tmp_path / "d")
    key = manifest_key(dest, "run.1/x", Kind.RUN)
    assert key.startswith(MANIFESTS) and key.endswith("-run_1_x.jsonl.gz") and not is_consolidated(key)
    writer = ManifestWriter(dest, key, {"run_id": "r"})
    records = [{"key": f"k{i:05d}", "status": "copied" if i % 3 else "failed", "size": i} for i in range(3000)]
    for rec in records:
        writer.add(rec)
    uri = writer.upload()
    writer.upload()  # a retry sends the same bytes again
    writer.close()
    assert uri == dest.store.uri(key)
    header, got = read_manifest(dest.store, key)
    assert header["type"] == "header" and header["run_id"] == "r"
    assert header["counts"] == {"copied": 2000, "failed": 1000}
    assert [{k: v for k, v in r.items() if k != "type"} for r in got] == records
    raw = b"".join(dest.store.read(key))
    assert raw[:2] == b"\x1f\x8b" and len(raw) < len(json.dumps(records)) // 4


def test_external_sort_is_ordered_and_keeps_the_first_of_equal_keys() -> None:
    rng = random.Random(7)
    keys = [f"k{rng.randrange(500):03d}" for _ in range(2000)]
    pairs = [(k, (json.dumps({"key": k, "n": i}) + "\n").encode()) for i, k in enumerate(keys)]
    out = list(sorted_lines(pairs, chunk=37))
    assert [k for k, _ in out] == sorted(keys)
    firsts: dict[str, int] = {}
    for k, line in out:
        firsts.setdefault(k, json.loads(line)["n"])
    assert firsts == {k: keys.index(k) for k in set(keys)}


def test_chain_is_consolidated_pruned_and_a_rerun_after_pruning_copies_nothing(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(20):
        (src / f"f{i:02d}.bin").write_bytes(b"v0-%d" % i)
    opts = ReplicationOptions(progress_interval=0, manifest_retention=ManifestRetention(keep=2, consolidate_every=3))
    first = replicate(loc(src), [loc(dst)], opts)
    assert first.copied == 20
    for run in range(1, 12):
        (src / f"f{run:02d}.bin").write_bytes(b"v%d" % run)  # one changed object per run
        s = replicate(loc(src), [loc(dst)], opts)
        assert (s.copied, s.skipped) == (1, 19)
        listed = names(loc(dst))
        consolidated = [n for n in listed if is_consolidated(n)]
        assert len(consolidated) == 1, listed
        # the consolidated one, the newest `keep`, and at most `consolidate_every - 1` not yet consolidated
        assert len(listed) <= 1 + 2 + 2, listed
        header, recs = read_manifest(dst_store(dst), consolidated[0])
        keys = [r["key"] for r in recs]
        assert keys == sorted(keys) and len(keys) == 20 and header["kind"] == "consolidated"
    again = replicate(loc(src), [loc(dst)], opts)
    assert (again.copied, again.skipped) == (0, 20)
    previous = read_previous(loc(dst))
    assert sorted(previous) == [f"f{i:02d}.bin" for i in range(20)]
    assert all(previous[f"f{i:02d}.bin"]["size"] == (src / f"f{i:02d}.bin").stat().st_size for i in range(20))


def dst_store(path: Path) -> LocalStore:
    return LocalStore(str(path))


def test_a_no_op_rerun_writes_a_header_and_no_records(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_bytes(b"x%d" % i)
    opts = ReplicationOptions(progress_interval=0)
    replicate(loc(src), [loc(dst)], opts)
    s = replicate(loc(src), [loc(dst)], opts)
    assert (s.copied, s.skipped) == (0, 5)
    newest_run = max(n for n in names(loc(dst)) if not is_consolidated(n))
    header, recs = read_manifest(dst_store(dst), newest_run)
    assert header["counts"] == {} and list(recs) == []
    assert s.manifests == [dst_store(dst).uri(newest_run)]


def test_a_mirror_deletion_ends_the_older_record(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}").write_bytes(b"x%d" % i)
    opts = ReplicationOptions(mode="mirror", max_delete=1, progress_interval=0)
    replicate(loc(src), [loc(dst)], opts)
    (src / "f1").unlink()
    s = replicate(loc(src), [loc(dst)], opts)
    assert s.deleted == 1
    assert sorted(read_previous(loc(dst))) == ["f0", "f2"]


def test_an_older_format_manifest_is_still_read(tmp_path: Path) -> None:
    dest = loc(tmp_path / "d")
    old = [{"type": "header", "complete": True}, {"type": "object", "key": "a", "status": "copied", "size": 1}]
    older = [{"type": "header", "complete": True}, {"type": "object", "key": "b", "status": "copied", "size": 2}]
    dest.store.write(MANIFESTS + "20240102T000000Z-r.jsonl", ["\n".join(map(json.dumps, old)).encode()])
    dest.store.write(MANIFESTS + "20240101T000000Z-r.jsonl", ["\n".join(map(json.dumps, older)).encode()])
    # the newest complete one covers the dataset: the one before it no longer counts
    assert list(read_previous(dest)) == ["a"]
