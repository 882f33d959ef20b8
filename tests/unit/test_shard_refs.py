"""A plan travels as one object and each mapped task gets a small reference: XCom does not grow with the dataset."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_multicloud.operators.replicate import PlanReplicationOperator, ReplicateDatasetOperator
from airflow_multicloud.replication.model import (
    LISTED,
    Location,
    Plan,
    PlanAction,
    PlanEntry,
    RunSummary,
    SourceObject,
)
from airflow_multicloud.replication.plan_store import read_shard, write_plan
from airflow_multicloud.stores.local import LocalStore

OBJECTS = 100_000
STAMP = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def _entry(i: int) -> PlanEntry:
    obj = SourceObject(f"date=2024-05-01/part-{i:06d}.parquet", 1000 + i % 977, f"{i:032x}", STAMP, None)
    return PlanEntry(obj, {0: PlanAction.COPY, 1: PlanAction.COPY})


@pytest.mark.slow  # the 100,000 objects: ~50-75 s on the shared 2-core machine at load 20
def test_a_shard_reference_stays_under_1_kib_at_100000_objects(tmp_path: Path) -> None:
    dest = Location(LocalStore(str(tmp_path)), "replica/sales/")
    plan = Plan([_entry(i) for i in range(OBJECTS)])
    shards = plan.shard(8)
    header = {"source": "s3://raw/sales/", "destinations": [dest.uri]}
    refs = write_plan(dest, "dag.manual__2024-05-01T12:30:00+00:00.plan", header, shards)

    assert len(refs) == 8
    sizes = [len(json.dumps(r)) for r in refs]
    assert max(sizes) < 1024, sizes
    # every entry is in exactly one shard, each shard reads back just its own, as written
    seen: list[str] = []
    for ref, written in zip(refs, shards, strict=True):
        got_header, entries = read_shard(dest, ref)
        assert got_header["source"] == "s3://raw/sales/" and got_header["entries"] == OBJECTS
        assert [e.to_json() for e in entries] == [e.to_json() for e in written]
        seen += [e.obj.rel for e in entries]
    assert sorted(seen) == sorted(e.obj.rel for e in plan.entries)


def test_a_reference_to_another_destination_or_of_another_shape_is_refused(tmp_path: Path) -> None:
    dest = Location(LocalStore(str(tmp_path)), "a/")
    refs = write_plan(dest, "run", {"source": "s3://x/", "destinations": [dest.uri]}, [[_entry(1)], [_entry(2)]])
    with pytest.raises(ValueError, match="not one under this task's first destination"):
        read_shard(Location(LocalStore(str(tmp_path)), "b/"), refs[0])
    with pytest.raises(ValueError, match="plan_shard must be one item"):
        read_shard(dest, {"shard": "1/2", "entries": []})
    with pytest.raises(ValueError, match="says 3 shards"):
        read_shard(dest, {**refs[0], "of": 3})
    # a plan cut short is refused, never read as a shorter shard
    key = refs[0]["plan"][len(dest.store.uri("")) :]
    whole = b"".join(dest.store.read(key))
    dest.store.write(key, [whole[: len(whole) - 12]])
    with pytest.raises(ValueError, match="ends early"):
        read_shard(dest, refs[1])


def _context() -> dict[str, Any]:
    return {"dag": SimpleNamespace(dag_id="d"), "run_id": "r1", "outlet_events": defaultdict(SimpleNamespace)}


def test_operators_plan_once_and_each_shard_copies_its_part_by_reference(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    for i in range(9):
        (src / "day").mkdir(parents=True, exist_ok=True)
        (src / "day" / f"f{i}.csv").write_bytes(b"x" * (100 + i))
    dst.mkdir()
    kwargs = {"source": f"file://{src}/day/", "destinations": [f"file://{dst}/day/"]}
    refs = PlanReplicationOperator(task_id="plan", shards=3, **kwargs).execute(_context())

    assert [(r["shard"], r["of"]) for r in refs] == [(1, 3), (2, 3), (3, 3)]
    assert all("entries" not in r and len(json.dumps(r)) < 1024 for r in refs)
    copied = 0
    for ref in refs:
        out = ReplicateDatasetOperator(task_id="copy", plan_shard=ref, **kwargs).execute(_context())
        copied += out["copied"]
    assert copied == 9
    assert sorted(p.name for p in (dst / "day").glob("*.csv")) == [f"f{i}.csv" for i in range(9)]

    other = {**kwargs, "source": f"file://{src}/"}
    with pytest.raises(ValueError, match="was made for"):
        ReplicateDatasetOperator(task_id="copy", plan_shard=refs[0], **other).execute(_context())


def test_a_summary_lists_at_most_LISTED_keys_and_says_how_many_there_were() -> None:
    failed = [f"s3://b/k{i} (IntegrityError: bad)" for i in range(LISTED * 3)]
    out = RunSummary("r", "s3://a/", ["s3://b/"], failed=len(failed), failed_keys=failed).to_json()
    assert out["failed_keys"] == failed[:LISTED] and out["failed_keys_total"] == len(failed)
    assert len(json.dumps(out)) < 64 * 1024
    small = RunSummary("r", "s3://a/", ["s3://b/"], failed_keys=failed[:2]).to_json()
    assert small["failed_keys"] == failed[:2] and "failed_keys_total" not in small
