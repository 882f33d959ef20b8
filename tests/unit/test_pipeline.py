"""Copies that start while the listing still runs: the same summary and the same manifest records as a run that
plans everything first, and a first write made before the source listing has ended."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_multicloud.replication.copy import CopyOptions
from airflow_multicloud.replication.engine import ReplicationOptions, replicate
from airflow_multicloud.replication.manifest import read_manifest
from airflow_multicloud.replication.model import Location, RunSummary
from airflow_multicloud.replication.pipeline import streams
from airflow_multicloud.replication.plan import Filters
from airflow_multicloud.replication.progress import Snapshot
from airflow_multicloud.stores.base import ObjectInfo, WriteResult
from airflow_multicloud.stores.local import LocalStore

#: what differs between two runs however alike: when, which run, which replica
_RUN_FIELDS = {"run_id", "destinations", "duration_s", "throughput_mb_s", "first_copy_s", "manifests"}


def _files(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def _replicas(tmp_path: Path, name: str, source: Location) -> list[Location]:
    """Two replicas holding what a first run over part of the source left (a verified copy and its manifest)."""
    dests = []
    for d in range(2):
        (tmp_path / f"{name}{d}").mkdir()
        dests.append(Location(LocalStore(str(tmp_path / f"{name}{d}")), "set/"))
    replicate(source, dests, ReplicationOptions(progress_interval=0, filters=Filters(exclude=["b/*"])))
    return dests


def _neutral(summary: RunSummary, dests: list[Location]) -> str:
    out = {k: v for k, v in summary.to_json().items() if k not in _RUN_FIELDS}
    text = json.dumps(out, sort_keys=True)
    for d, dest in enumerate(dests):
        text = text.replace(dest.uri, f"<replica {d}>")
    return text


def _records(summary: RunSummary, dests: list[Location]) -> list[list[dict[str, Any]]]:
    out = []
    for uri, dest in zip(summary.manifests, dests, strict=True):
        _, records = read_manifest(dest.store, uri[len(dest.store.uri()) :])
        out.append(sorted(({k: v for k, v in r.items() if k != "dest_last_modified"} for r in records), key=str))
    return out


def test_copying_while_listing_gives_the_summary_and_manifests_of_a_plan_made_first(tmp_path: Path) -> None:
    files = {f"{top}/{i:03d}.bin": f"{top}{i}".encode() * (i + 1) for top in "abc" for i in range(40)}
    _files(tmp_path / "src" / "set", files)
    source = Location(LocalStore(str(tmp_path / "src")), "set/")
    planned_first, streamed = _replicas(tmp_path, "first", source), _replicas(tmp_path, "streamed", source)
    for i in range(0, 40, 3):  # changed since the first run: copied again
        (tmp_path / "src" / "set" / f"a/{i:03d}.bin").write_bytes(b"changed")
    (tmp_path / "src" / "set" / "c/new.bin").write_bytes(b"new")

    budget = ReplicationOptions(progress_interval=0, max_cost=1e9)  # a budget: the whole plan comes first
    assert not streams(budget) and streams(ReplicationOptions())
    first = replicate(source, planned_first, budget)
    shown: list[tuple[Snapshot, bool]] = []
    again = replicate(source, streamed, ReplicationOptions(progress_interval=0, progress_display=_shows(shown)))

    assert (again.copied, again.skipped, again.objects) == (2 * (40 + 14 + 1), 2 * (121 - 55), 121)
    assert _neutral(again, streamed) == _neutral(first, planned_first)
    assert _records(again, streamed) == _records(first, planned_first)
    assert again.first_copy_s is not None and first.first_copy_s is not None
    ((last, final),) = shown  # the totals the listing found in all, once it ended
    assert final and not last.so_far and (last.objects, last.total_objects) == (55, 55)
    assert last.total_bytes == again.copied_bytes == first.copied_bytes


def _shows(shown: list[tuple[Snapshot, bool]]) -> Any:
    return lambda snap, final: shown.append((snap, final))


def test_a_progress_line_while_listing_says_its_totals_are_so_far() -> None:
    snap = Snapshot(3, 10, 30, 100, 0, 1.0, 0.1, None, so_far=True)
    assert snap.line().startswith("3/10 objects listed so far, ") and snap.line().endswith("ETA -")
    assert "so far" not in Snapshot(3, 10, 30, 100, 0, 1.0, 0.1, 7.0).line()


class _Paused(LocalStore):
    """A source whose listing stops after 500 objects (two of the batches a listing hands to the merge) until a
    destination has been written to, or 30 s have passed."""

    def __init__(self, root: str, written: threading.Event) -> None:
        super().__init__(root)
        self.written, self.seen_before_end = written, False

    def list_noting(self, prefix: str, unlisted: list[str]) -> Iterator[ObjectInfo]:
        for n, info in enumerate(super().list_noting(prefix, unlisted)):
            if n == 500:
                self.seen_before_end = self.written.wait(30)
            yield info


class _Noting(LocalStore):
    def __init__(self, root: str, written: threading.Event) -> None:
        super().__init__(root)
        self.written = written

    def write(self, key: str, *args: Any, **kwargs: Any) -> WriteResult:
        result = super().write(key, *args, **kwargs)
        self.written.set()
        return result


def test_the_first_copy_is_written_before_the_source_listing_ends(tmp_path: Path) -> None:
    _files(tmp_path / "src", {f"{i:03d}.bin": bytes([i % 256]) * 10 for i in range(600)})
    (tmp_path / "dst").mkdir()
    written = threading.Event()
    source = _Paused(str(tmp_path / "src"), written)
    options = ReplicationOptions(progress_interval=0, copy=CopyOptions(server_side=False))
    summary = replicate(Location(source, ""), [Location(_Noting(str(tmp_path / "dst"), written), "")], options)
    assert source.seen_before_end
    assert (summary.copied, summary.objects) == (600, 600)
