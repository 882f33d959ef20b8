"""Exit codes that tell the truth once writing has begun: deletes and manifest writes retried like copies, a
run stopped by the service exits 3 with a summary of what it did, a dry run reports the deletes a mirror would do.

Runs ``multicloud replicate`` in-process against the local S3 and OSS servers with injected faults.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_multicloud.cli.main import main as cli

FILES = {"in/a.csv": b"id,v\n1,2\n", "in/b.csv": b"id,v\n3,4\n", "in/c.csv": b"id,v\n5,6\n"}
STALE = ("old/1.csv", "old/2.csv", "old/3.csv")


def _bed(services: dict[str, Any]) -> tuple[str, str, Any]:
    """An S3 source with three objects and an OSS mirror holding three objects absent at the source."""
    s3, oss = services["s3"], services["oss"]
    src, dst = s3.create_bucket(), oss.create_bucket()
    for key, data in FILES.items():
        s3.store(src).write(key, [data])
    for key in STALE:
        oss.store(dst).write(f"mirror/{key}", [b"stale"])
    return f"s3://{src}/in/", f"oss://{dst}/mirror/", oss.store(dst)


def _keys(store: Any) -> set[str]:
    return {o.key for o in store.list("mirror/")}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = cli(["replicate", *argv, "--json", "--progress-interval", "0"])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


def test_a_delete_that_keeps_failing_exits_3_with_what_was_done(
    clean_services: dict[str, Any], airflow_connections: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst, store = _bed(clean_services)
    oss = clean_services["oss"]
    oss.faults.add("status", status=500, code="InternalError", operation="DeleteObject", key="mirror/old/2.csv")
    oss.clear_log()
    code, summary, err = _run(capsys, src, dst, "--mode", "mirror", "--max-delete", "5", "--retries", "2")
    assert code == 3, err[-3000:]
    assert summary["outcome"] == "incomplete" and "InternalError" in summary["error"]
    assert (summary["copied"], summary["deleted"], len(summary["manifests"])) == (3, 1, 1)
    assert "1 objects deleted" in err and "run it again" in err
    deletes = [r for r in oss.requests if r.operation == "DeleteObject" and r.key == "mirror/old/2.csv"]
    assert len(deletes) == 3, "the first try and two retries"
    assert _keys(store) >= {"mirror/old/2.csv", "mirror/old/3.csv"}, "the run stopped at the failing delete"


def test_a_delete_that_fails_once_is_retried(
    clean_services: dict[str, Any], airflow_connections: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst, store = _bed(clean_services)
    clean_services["oss"].faults.add("status", status=503, code="ServiceUnavailable", operation="DeleteObject", times=1)
    code, summary, err = _run(capsys, src, dst, "--mode", "mirror", "--max-delete", "5")
    assert code == 0, err[-3000:]
    assert (summary["deleted"], summary["outcome"]) == (3, "verified")
    assert not any(k.startswith("mirror/old/") for k in _keys(store))


def test_a_manifest_write_that_fails_once_is_retried(
    clean_services: dict[str, Any], airflow_connections: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst, store = _bed(clean_services)
    oss = clean_services["oss"]
    oss.faults.add("status", status=500, code="InternalError", operation="PutObject", key="*_multicloud/*", times=1)
    code, summary, err = _run(capsys, src, dst)
    assert code == 0, err[-3000:]
    assert summary["failed"] == 0 and len(summary["manifests"]) == 1
    assert any("_multicloud/manifests/" in k for k in _keys(store))


def test_a_manifest_write_that_keeps_failing_is_named_and_exits_1(
    clean_services: dict[str, Any], airflow_connections: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst, _ = _bed(clean_services)
    clean_services["oss"].faults.add(
        "status", status=500, code="InternalError", operation="PutObject", key="*_multicloud/*"
    )
    code, summary, err = _run(capsys, src, dst, "--retries", "1")
    assert code == 1, err[-3000:]
    assert summary["manifests"] == [] and any(k.startswith(f"manifest for {dst}") for k in summary["failed_keys"])


def test_dry_run_reports_the_deletes_a_mirror_would_do(
    clean_services: dict[str, Any], airflow_connections: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst, store = _bed(clean_services)
    before = _keys(store)
    code, summary, err = _run(capsys, src, dst, "--mode", "mirror", "--max-delete", "5", "--dry-run")
    assert code == 0, err[-3000:]
    assert (summary["dry_run"], summary["copied"], summary["deleted"]) == (True, 3, 3)
    assert summary["per_destination"][0]["delete_sample"] == [dst + k for k in STALE]
    assert cli(["replicate", src, dst, "--mode", "mirror", "--max-delete", "5", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "would copy 3" in text and "delete 3" in text and f"would delete: {dst}old/1.csv" in text
    assert _keys(store) == before


def test_a_copy_that_fails_exits_1_and_names_the_object(
    clean_services: dict[str, Any], airflow_connections: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst, _ = _bed(clean_services)
    clean_services["s3"].faults.add("status", status=500, code="InternalError", operation="GetObject", key="in/b.csv")
    code, summary, err = _run(capsys, src, dst, "--mode", "mirror", "--max-delete", "5", "--retries", "1")
    assert code == 1 and summary["outcome"] == "failed"
    assert summary["failed"] == 1 and "b.csv" in summary["failed_keys"][0] and "b.csv" in err
    assert summary["deleted"] == 0, "a mirror deletes nothing when a copy failed"
