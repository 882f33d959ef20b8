"""The engine end to end on local folders: plan, copy, verify, manifests, rerun, mirror, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_multicloud.errors import InvalidURIError
from airflow_multicloud.hooks.factory import open_location
from airflow_multicloud.replication.engine import ReplicationError, ReplicationOptions, replicate
from airflow_multicloud.replication.manifest import is_consolidated, read_manifest
from airflow_multicloud.replication.model import Location
from airflow_multicloud.replication.plan import Filters
from airflow_multicloud.stores.base import MiB, TransferConfig
from airflow_multicloud.stores.local import LocalStore

SMALL = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB, max_concurrency=2)


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    src, d1, d2 = tmp_path / "src", tmp_path / "d1", tmp_path / "d2"
    for p in (src, d1, d2):
        p.mkdir()
    make_tree(src, {"a.csv": b"x,y\n1,2\n", "sub/b.json": b'{"a":1}\n', "big.bin": os.urandom(11 * MiB + 3)})
    return src, d1, d2


def loc(path: Path) -> Location:
    return Location(LocalStore(str(path), transfer=SMALL), "")


def test_copy_to_two_destinations_then_rerun_copies_nothing(dirs: tuple[Path, Path, Path]) -> None:
    src, d1, d2 = dirs
    opts = ReplicationOptions(progress_interval=0)
    summary = replicate(loc(src), [loc(d1), loc(d2)], opts)
    assert (summary.objects, summary.copied, summary.skipped, summary.failed) == (3, 6, 0, 0)
    for d in (d1, d2):
        for rel in ("a.csv", "sub/b.json", "big.bin"):
            assert (d / rel).read_bytes() == (src / rel).read_bytes()
        # the run's manifest, and the consolidated one a first run starts the chain with
        manifests = sorted(p.name for p in (d / "_multicloud" / "manifests").glob("*.jsonl.gz"))
        assert len(manifests) == 2 and is_consolidated(manifests[1]) and not is_consolidated(manifests[0])
        header, records = read_manifest(loc(d).store, "_multicloud/manifests/" + manifests[0])
        rows = list(records)
        assert header["kind"] == "run" and header["complete"] is True and header["counts"] == {"copied": 3}
        assert {r["key"]: r["status"] for r in rows} == {"a.csv": "copied", "sub/b.json": "copied", "big.bin": "copied"}
        assert all(r["crc64"] and r["verified_by"] for r in rows)

    again = replicate(loc(src), [loc(d1), loc(d2)], opts)
    assert (again.copied, again.skipped) == (0, 6)

    (src / "a.csv").write_bytes(b"x,y\n1,3\n")
    third = replicate(loc(src), [loc(d1), loc(d2)], opts)
    assert (third.copied, third.skipped) == (2, 4)
    assert (d1 / "a.csv").read_bytes() == b"x,y\n1,3\n"


def test_overwrite_never_reports_and_keeps(dirs: tuple[Path, Path, Path]) -> None:
    src, d1, _ = dirs
    replicate(loc(src), [loc(d1)], ReplicationOptions(progress_interval=0))
    (src / "a.csv").write_bytes(b"changed\n")
    s = replicate(loc(src), [loc(d1)], ReplicationOptions(overwrite="never", progress_interval=0))
    assert s.conflicts == 1 and s.conflict_keys[0].endswith("a.csv")
    assert (d1 / "a.csv").read_bytes() == b"x,y\n1,2\n"


def test_mirror_respects_max_delete(dirs: tuple[Path, Path, Path]) -> None:
    src, d1, _ = dirs
    make_tree(d1, {"old1": b"1", "old2": b"2"})
    with pytest.raises(ReplicationError, match="max_delete=1"):
        replicate(loc(src), [loc(d1)], ReplicationOptions(mode="mirror", max_delete=1, progress_interval=0))
    assert (d1 / "old1").exists() and (d1 / "old2").exists()
    s = replicate(loc(src), [loc(d1)], ReplicationOptions(mode="mirror", max_delete=2, progress_interval=0))
    assert s.deleted == 2 and not (d1 / "old1").exists()
    assert list((d1 / "_multicloud" / "manifests").glob("*.jsonl.gz")), "mirror must keep manifests"


def test_filters_and_dry_run(dirs: tuple[Path, Path, Path]) -> None:
    src, d1, _ = dirs
    s = replicate(
        loc(src),
        [loc(d1)],
        ReplicationOptions(filters=Filters(include=["*.csv", "sub/*"]), dry_run=True, progress_interval=0),
    )
    assert s.dry_run and s.copied == 2
    assert not any(d1.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"mode": "sync"}, "mode='sync'"), ({"overwrite": "always"}, "overwrite='always'")],
)
def test_bad_options_name_the_value(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReplicationOptions(**kwargs)  # type: ignore[arg-type]


def test_bad_locations_write_nothing(tmp_path: Path, dirs: tuple[Path, Path, Path]) -> None:
    src, d1, _ = dirs
    inside = open_location(f"file://{src}/copy/", create=True)
    with pytest.raises(ValueError, match="overlaps the source"):
        replicate(open_location(f"file://{src}/"), [inside])
    with pytest.raises(ValueError, match="overlaps the source"):
        replicate(open_location(f"file://{src}/"), [open_location(f"file://{src}/")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no objects"):
        replicate(loc(empty), [loc(d1)])
    assert replicate(loc(empty), [loc(d1)], ReplicationOptions(allow_empty=True, progress_interval=0)).objects == 0
    with pytest.raises(InvalidURIError, match="'ftp://x/y'"):
        open_location("ftp://x/y")
    assert [o.key for o in LocalStore(str(d1)).list() if not o.key.startswith("_multicloud/")] == []
