"""Symbolic links in local stores: never followed out of the root, in either direction, and never silent."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from airflow_multicloud.errors import InvalidKeyError
from airflow_multicloud.replication.engine import ReplicationError, ReplicationOptions, replicate
from airflow_multicloud.replication.model import Location
from airflow_multicloud.replication.plan import plan_copy
from airflow_multicloud.stores.local import LocalStore


def loc(path: Path) -> Location:
    path.mkdir(exist_ok=True)
    return Location(LocalStore(str(path)), "")


@pytest.fixture
def linked_source(tmp_path: Path) -> Path:
    """A source with a plain file and every kind of link."""
    src, outside = tmp_path / "src", tmp_path / "outside"
    (src / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"must not leave its folder")
    (src / "a.csv").write_bytes(b"a\n")
    (src / "sub" / "b.csv").write_bytes(b"b\n")
    (src / "latest.csv").symlink_to("a.csv")  # a file inside the root
    (src / "leak.txt").symlink_to(outside / "secret.txt")  # a file outside the root
    (src / "folder-link").symlink_to(src / "sub")  # a folder
    (src / "dangling").symlink_to(src / "nothing-here")
    os.mkfifo(src / "pipe")  # reading it would block forever
    return src


def test_source_links_inside_root_are_copied_and_the_rest_reported(
    linked_source: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dst = tmp_path / "dst"
    with caplog.at_level(logging.WARNING, logger="airflow_multicloud"):
        summary = replicate(loc(linked_source), [loc(dst)], ReplicationOptions(progress_interval=0))
    copies = sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file() and "multicloud" not in str(p))
    assert copies == ["a.csv", "latest.csv", "sub/b.csv"]
    assert (dst / "latest.csv").read_bytes() == b"a\n" and not (dst / "latest.csv").is_symlink()
    assert summary.failed == 0
    reported = "\n".join(summary.unlisted)
    for name, why in [
        ("leak.txt", "outside the root"),
        ("folder-link", "to a folder"),
        ("dangling", "dangling"),
        ("pipe", "not a regular file"),
    ]:
        assert f"{name} (" in reported and why in reported
        assert any(name in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert len(summary.unlisted) == 4
    # a rerun is quiet about copies and still names the links
    again = replicate(loc(linked_source), [loc(dst)], ReplicationOptions(progress_interval=0))
    assert (again.copied, again.skipped, again.failed, len(again.unlisted)) == (0, 3, 0, 4)


def test_reading_through_a_link_out_of_the_root_is_refused(linked_source: Path) -> None:
    store = LocalStore(str(linked_source))
    with pytest.raises(InvalidKeyError, match="outside the root"):
        b"".join(store.read("leak.txt"))
    with pytest.raises(InvalidKeyError, match="outside the root"):
        store.head("leak.txt")


def test_destination_folder_linked_out_of_the_root_is_never_written(tmp_path: Path) -> None:
    src, dst, elsewhere = tmp_path / "src", tmp_path / "dst", tmp_path / "elsewhere"
    (src / "day=1").mkdir(parents=True)
    (src / "day=1" / "a.csv").write_bytes(b"a\n")
    (src / "b.csv").write_bytes(b"b\n")
    dst.mkdir()
    elsewhere.mkdir()
    (dst / "day=1").symlink_to(elsewhere)
    plan = plan_copy(loc(src), [loc(dst)])
    assert [(e.obj.rel, str(e.actions[0])) for e in plan.entries] == [("b.csv", "copy"), ("day=1/a.csv", "invalid-key")]
    assert any("day=1 (" in u and "folder" in u for u in plan.unlisted)
    with pytest.raises(ReplicationError) as err:
        replicate(loc(src), [loc(dst)], ReplicationOptions(progress_interval=0))
    assert "day=1/a.csv" in str(err.value) and "outside the root" in str(err.value)
    assert list(elsewhere.iterdir()) == []
    assert (dst / "b.csv").read_bytes() == b"b\n"


def test_mirror_never_deletes_a_destination_link(tmp_path: Path) -> None:
    src, dst, elsewhere = tmp_path / "src", tmp_path / "dst", tmp_path / "elsewhere"
    src.mkdir()
    (src / "a.csv").write_bytes(b"a\n")
    dst.mkdir()
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_bytes(b"keep")
    (dst / "shared").symlink_to(elsewhere)
    opts = ReplicationOptions(mode="mirror", max_delete=5, progress_interval=0)  # type: ignore[arg-type]
    summary = replicate(loc(src), [loc(dst)], opts)
    assert summary.deleted == 0 and (dst / "shared").is_symlink() and (elsewhere / "keep.txt").exists()
