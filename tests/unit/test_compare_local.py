"""compare_replicas on local folders: object level, quick vs full, rows, reports, CLI exit codes."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from airflow_multicloud.cli.main import main
from airflow_multicloud.replication.engine import ReplicationOptions, replicate
from airflow_multicloud.replication.model import Location
from airflow_multicloud.stores.base import MiB, TransferConfig
from airflow_multicloud.stores.local import LocalStore
from airflow_multicloud.validation.compare import compare_replicas

SMALL = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB, max_concurrency=2)
FILES = {
    "a.csv": b'id,name\n1,"multi\nline"\n2,b\n3,c\n',
    "sub/b.jsonl": b'{"x": 1}\n{"x": 2}\n',
    "c.csv.gz": gzip.compress(b"k\n1\n2\n3\n4\n"),
    "big.bin": os.urandom(6 * MiB + 5),
}


def loc(path: Path) -> Location:
    return Location(LocalStore(str(path), transfer=SMALL), "")


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    source = loc(src)
    for rel, data in FILES.items():  # written through the store: its sidecar keeps the files' MD5 and CRC64
        source.store.write(rel, [data])
    replicate(source, [loc(dst)], ReplicationOptions(progress_interval=0))
    return src, dst


def kinds(report: object) -> dict[str, str]:
    rep = report.replicas[0]  # type: ignore[attr-defined]
    return {d.key: d.kind for d in rep.differences}


def test_faithful_replica_passes_both_levels_with_rows(pair: tuple[Path, Path]) -> None:
    src, dst = pair
    for level in ("quick", "full"):
        report = compare_replicas(loc(src), [loc(dst)], level=level, count_rows=True)
        rep = report.replicas[0]
        assert report.ok, report.table()
        assert (rep.passed, rep.failed, rep.unverified) == (4, 0, 0)
        assert report.rows == rep.rows == 3 + 2 + 4
        assert rep.files["a.csv"] == {"source_rows": 3, "replica_rows": 3}
        assert "big.bin" not in rep.files  # no format: not a data file
    assert list(compare_replicas(loc(src), [loc(dst)], level="full").replicas[0].checksum_methods) == [
        "crc64 (recomputed)"
    ]


def test_tampering_is_caught_and_named(pair: tuple[Path, Path]) -> None:
    src, dst = pair
    (dst / "sub/b.jsonl").unlink()
    (dst / "stray.txt").write_bytes(b"x")
    (dst / "big.bin").write_bytes((src / "big.bin").read_bytes()[:-1])
    (dst / "a.csv").write_bytes(b'id,name\n1,"multi\nline"\n2,b\n')  # one row removed
    report = compare_replicas(loc(src), [loc(dst)], count_rows=True)
    assert not report.ok
    assert kinds(report) == {"sub/b.jsonl": "missing", "stray.txt": "extra", "big.bin": "size", "a.csv": "rows"}
    rows = next(d for d in report.replicas[0].differences if d.kind == "rows")
    assert (rows.source, rows.replica) == (3, 2)
    text = report.table()
    assert "MISMATCH" in text and "sub/b.jsonl: missing" in text and "a.csv: rows (source: 3, replica: 2)" in text


def test_flipped_byte_is_unverified_in_quick_and_a_mismatch_in_full(pair: tuple[Path, Path]) -> None:
    src, dst = pair
    with open(dst / "big.bin", "r+b") as f:  # same size; the local store's recorded checksums go stale
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 1]))
    quick = compare_replicas(loc(src), [loc(dst)])
    assert kinds(quick) == {"big.bin": "unverified"} and not quick.ok
    assert compare_replicas(loc(src), [loc(dst)], allow_unverified=True).ok
    full = compare_replicas(loc(src), [loc(dst)], level="full")
    assert kinds(full) == {"big.bin": "checksum"}
    diff = full.replicas[0].differences[0]
    assert str(diff.source).startswith("crc64 ") and diff.source != diff.replica


def test_unreadable_file_is_reported_with_its_reason(pair: tuple[Path, Path]) -> None:
    src, dst = pair
    data = (dst / "c.csv.gz").read_bytes()
    (dst / "c.csv.gz").write_bytes(data[:-12] + b"\0" * 12)  # same size, gzip trailer destroyed
    report = compare_replicas(loc(src), [loc(dst)], count_rows=True, allow_unverified=True)
    bad = [d for d in report.replicas[0].differences if d.kind == "unreadable"]
    assert [d.key for d in bad] == ["c.csv.gz"] and "gzip" in str(bad[0].replica)


def test_reports_render(pair: tuple[Path, Path]) -> None:
    src, dst = pair
    (dst / "a.csv").unlink()
    report = compare_replicas(loc(src), [loc(dst)])
    data = json.loads(report.dumps())
    assert data["ok"] is False and data["replicas"][0]["difference_counts"] == {"missing": 1}
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>") and "a.csv" in page and "MISMATCH" in page


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="level"):
        compare_replicas(loc(tmp_path), [loc(tmp_path)], level="fast")
    with pytest.raises(ValueError, match="no objects"):
        compare_replicas(loc(tmp_path), [loc(tmp_path)])


def test_cli_exit_codes(pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = pair
    html = tmp_path / "r.html"
    assert main(["verify", f"file://{src}/", f"file://{dst}/", "--rows", "--html", str(html)]) == 0
    assert html.read_text().startswith("<!DOCTYPE html>")
    capsys.readouterr()
    assert main(["verify", f"file://{src}/", f"file://{dst}/", "--level", "full", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["level"] == "full" and out["replicas"][0]["passed"] == 4
    (dst / "a.csv").unlink()
    assert main(["verify", f"file://{src}/", f"file://{dst}/"]) == 1
    assert "a.csv: missing" in capsys.readouterr().out
    assert main(["verify", f"file://{src}/", "nope://x/"]) == 2
    assert main(["verify", f"file://{tmp_path}/empty-nothing/", f"file://{dst}/"]) == 2
