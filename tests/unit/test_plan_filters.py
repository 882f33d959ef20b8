"""Filters judge the source side only; mirror extras are judged against the whole source listing; our own
``_multicloud/`` folders at the source are skipped with a word; prefixes are folders."""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from airflow_multicloud.errors import InvalidURIError
from airflow_multicloud.replication.engine import ReplicationOptions, check_locations, replicate
from airflow_multicloud.replication.model import Location, Mode, Plan, PlanAction, PlanEntry
from airflow_multicloud.replication.plan import Filters, plan_copy
from airflow_multicloud.stores.local import LocalStore

DAY = 86400


def write(root: Path, rel: str, data: bytes, age_s: float = 0) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    if age_s:
        t = time.time() - age_s
        os.utime(p, (t, t))


def loc(path: Path, prefix: str = "") -> Location:
    path.mkdir(exist_ok=True)
    return Location(LocalStore(str(path)), prefix)


def mirror(**kw: object) -> ReplicationOptions:
    return ReplicationOptions(mode=Mode.MIRROR, max_delete=10, progress_interval=0, **kw)  # type: ignore[arg-type]


def test_min_age_mirror_keeps_the_backup_of_a_file_just_rewritten(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, "settled.csv", b"old enough\n", age_s=DAY)
    write(src, "busy.csv", b"being rewritten now\n")  # too young for min_age: not copied this run
    write(dst, "busy.csv", b"yesterday's version\n", age_s=DAY)  # its day-old backup
    summary = replicate(loc(src), [loc(dst)], mirror(filters=Filters(min_age=timedelta(minutes=15))))
    assert (summary.copied, summary.deleted) == (1, 0)
    assert (dst / "busy.csv").read_bytes() == b"yesterday's version\n"


def test_max_age_mirror_keeps_backups_of_old_source_files(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, "old1.csv", b"1\n", age_s=10 * DAY)
    write(src, "old2.csv", b"2\n", age_s=10 * DAY)
    write(src, "new.csv", b"3\n")
    write(dst, "old1.csv", b"1\n")  # backups written recently: their own mtimes are young
    write(dst, "old2.csv", b"2\n")
    summary = replicate(loc(src), [loc(dst)], mirror(filters=Filters(max_age=timedelta(days=7))))
    assert (summary.copied, summary.deleted) == (1, 0)
    assert sorted(p.name for p in dst.glob("*.csv")) == ["new.csv", "old1.csv", "old2.csv"]


def test_mirror_still_deletes_what_the_source_lost_and_keeps_what_the_globs_leave_out(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, "a.csv", b"a\n", age_s=DAY)
    write(dst, "gone.csv", b"deleted at the source\n", age_s=DAY)
    write(dst, "notes.tmp", b"not managed by this mirror\n")
    filters = Filters(exclude=("*.tmp",), min_age=timedelta(minutes=15))
    plan = plan_copy(loc(src), [loc(dst)], filters=filters)
    assert plan.extras == {0: ["gone.csv"]}
    summary = replicate(loc(src), [loc(dst)], mirror(filters=filters))
    assert summary.deleted == 1 and not (dst / "gone.csv").exists() and (dst / "notes.tmp").exists()


def test_source_keys_in_multicloud_folders_are_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, "a.csv", b"a\n")
    write(src, "_multicloud/manifests/run1.jsonl", b"{}\n")
    write(src, "day=1/_multicloud/report.html", b"<html/>")
    with caplog.at_level(logging.WARNING, logger="airflow_multicloud"):
        summary = replicate(loc(src), [loc(dst)], ReplicationOptions(progress_interval=0))
    assert (summary.objects, summary.copied, summary.reserved_skipped) == (1, 1, 2)
    assert not (dst / "day=1").exists()
    warned = [r.getMessage() for r in caplog.records if "_multicloud/" in r.getMessage()]
    assert warned and "2 source objects" in warned[0] and "day=1/_multicloud/report.html" in warned[0]


def test_a_prefix_is_a_folder(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path))
    assert Location(store, "data").prefix == "data/"
    assert Location(store, "data/").prefix == "data/"
    assert Location(store, "").prefix == ""
    for bad in ("/data", "data//x", "//"):
        with pytest.raises(InvalidURIError, match="empty folder name"):
            Location(store, bad)


def test_prefix_without_slash_lists_only_its_folder(tmp_path: Path) -> None:
    write(tmp_path, "data/f0.txt", b"0")
    write(tmp_path, "data2/f1.txt", b"1")
    store = LocalStore(str(tmp_path))
    plan = plan_copy(Location(store, "data"), [loc(tmp_path / "out")])
    assert [e.obj.rel for e in plan.entries] == ["f0.txt"]
    # as folders, data and data2 do not overlap; data and data/sub do
    check_locations(Location(store, "data"), [Location(store, "data2/")])
    with pytest.raises(ValueError, match="overlaps"):
        check_locations(Location(store, "data"), [Location(store, "data/sub")])


def test_local_root_is_compared_by_its_real_path(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    with pytest.raises(ValueError, match="overlaps"):
        check_locations(loc(tmp_path / "alias"), [loc(tmp_path / "real" / "backup")])


def test_plan_entries_keep_actions_and_reasons_through_json() -> None:
    data = {
        "obj": {"rel": "k", "size": 1, "etag": None, "last_modified": None, "crc64": None},
        "actions": {"0": "copy", "1": "invalid-key"},
        "reasons": {"1": "too long"},
    }
    entry = PlanEntry.from_json(data)
    assert entry.actions == {0: PlanAction.COPY, 1: PlanAction.INVALID_KEY} and entry.reasons == {1: "too long"}
    assert PlanEntry.from_json(entry.to_json()) == entry
    assert Plan([entry]).to_copy == [entry]  # a shard carries it, so the mapped task reports it failed


def test_cli_refuses_an_empty_folder_name_before_any_connection(capsys: pytest.CaptureFixture[str]) -> None:
    from airflow_multicloud.cli.main import EXIT_BAD_INPUT, main

    assert main(["replicate", "s3://raw-data//sales", "oss://backup-data/sales/"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "'s3://raw-data//sales': prefix '/sales' has an empty folder name" in err and "as sales/" in err
