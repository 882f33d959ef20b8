"""One refused multipart request never hangs a run nor leaves an unfinished upload behind.

Each fault (a 403, or a 503 on every attempt the SDK makes for one call) on each multipart request kind, for
objects of 2, 4 and 10 parts, on every cloud: the run ends, failing by name or succeeding after a retry, with the
replica byte-identical where it succeeded and no unfinished upload left. A hang is turned into a failure by the
hard timeout (the thread method dumps every stack and ends the process: a hung copy thread could not be joined).
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_multicloud.replication import copy as copy_module
from airflow_multicloud.replication.copy import CopyOptions
from airflow_multicloud.replication.engine import ReplicationError, ReplicationOptions, replicate
from airflow_multicloud.replication.model import Location
from airflow_multicloud.replication.plan import Filters
from airflow_multicloud.replication.uploads import clean_uploads
from airflow_multicloud.stores.base import TransferConfig
from airflow_multicloud.stores.local import LocalStore
from multicloud_testbed.cos_limits import CosLimits
from multicloud_testbed.cos_server import CosService

PART = 128 * 1024  # above OSS's 100 KiB minimum part size
PARTS = TransferConfig(multipart_threshold=PART, part_size=PART, max_concurrency=2)
REQUESTS = {
    "create": {"s3": "CreateMultipartUpload", "cos": "InitiateMultipartUpload", "oss": "InitiateMultipartUpload"},
    "list-uploads": dict.fromkeys(("s3", "cos", "oss"), "ListMultipartUploads"),
    "upload-part": dict.fromkeys(("s3", "cos", "oss"), "UploadPart"),
    "list-parts": dict.fromkeys(("s3", "cos", "oss"), "ListParts"),
    "complete": dict.fromkeys(("s3", "cos", "oss"), "CompleteMultipartUpload"),
}


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch, services: dict[str, Any]) -> TransferConfig:
    """Parts of 128 KiB on every cloud, with the tee as deep in parts as in production.

    moto enforces S3's 5 MiB minimum part size unless told otherwise (its documented S3_UPLOAD_PART_MIN_SIZE,
    read at import, so patched where it is used), our COS server COS's 1 MiB (its ``CosLimits``, lowered the same
    way); OSS's minimum is 100 KiB. The product never uploads such parts (``part_size`` is at least 5 MiB). The
    tee holds 16 MiB, two 8 MiB parts, in production: scaled down with the parts, so a writer that stops reading
    fills its queue as it does with real sizes.
    """
    monkeypatch.setattr("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", 100 * 1024)
    monkeypatch.setattr(services["cos"].server, "limits", CosLimits(min_part_size=100 * 1024))
    monkeypatch.setattr(copy_module, "TEE_BYTES", 2 * PART)
    return PARTS


def _sdk_attempts(cloud: str, store: Any) -> int:
    """How many times the SDK sends one call that keeps getting 5xx answers before it raises."""
    if cloud == "s3":
        return int(store.client.meta.config.retries["total_max_attempts"])
    if cloud == "cos":
        return CosService.sdk_retries + 1
    return 1  # oss2 retries only requests that got no answer


def _fault(svc: Any, cloud: str, store: Any, status: int, op: str) -> Any:
    per_call = 1 if status == 403 else _sdk_attempts(cloud, store)
    # the run lists the destination's unfinished uploads before copying, then the writer lists them again
    calls = 2 if op == "ListMultipartUploads" else 1
    code = "AccessDenied" if status == 403 else "ServiceUnavailable"
    return svc.faults.add("status", operation=op, status=status, code=code, times=per_call * calls)


@pytest.mark.timeout(90, method="thread")
@pytest.mark.parametrize("parts", [2, 4, 10])
@pytest.mark.parametrize("request_kind", list(REQUESTS))
@pytest.mark.parametrize("status", [403, 503])
@pytest.mark.parametrize("cloud", ["s3", "cos", "oss"])
def test_one_refused_multipart_request_ends_the_run_and_leaves_no_upload(
    clean_services: dict[str, Any],
    small_parts: TransferConfig,
    tmp_path: Path,
    cloud: str,
    status: int,
    request_kind: str,
    parts: int,
) -> None:
    svc = clean_services[cloud]
    dest = Location(svc.store(svc.create_bucket(), transfer=small_parts), "ds/")
    source = Location(LocalStore(str(tmp_path), transfer=small_parts), "")
    data = os.urandom((parts - 1) * PART + PART // 2)
    source.store.write("big.bin", [data])
    source.store.write("small.txt", [b"a small neighbour\n"])
    op = REQUESTS[request_kind][cloud]
    if op == "ListParts":  # only a resumed upload is listed: leave one from an earlier run, as a kill would
        upload_id = dest.store.create_multipart("ds/big.bin", metadata={})
        dest.store.upload_part("ds/big.bin", upload_id, 1, data[:PART])
    rule = _fault(svc, cloud, dest.store, status, op)

    options = ReplicationOptions(
        copy=CopyOptions(object_retries=2, retry_backoff=0.01),
        progress_interval=0,
        stale_upload_age=timedelta(hours=1),
    )
    try:
        summary = replicate(source, [dest], options)
    except ReplicationError as exc:
        summary = exc.summary
        assert summary.failed == 1 and [k for k in summary.failed_keys if "ds/big.bin" in k], summary.failed_keys
        assert [o.key for o in dest.store.list("ds/") if not o.key.startswith("ds/_multicloud/")] == ["ds/small.txt"]
    else:
        assert summary.copied == 2
        assert b"".join(dest.store.read("ds/big.bin")) == data
    svc.faults.clear()

    assert rule.fired == rule.times, "the fault must have reached the run"
    assert status == 503 or summary.failed == 1, "a 403 is final: the object fails, by name"
    assert list(dest.store.list_multipart_uploads("")) == [], "no unfinished upload left"
    assert b"".join(dest.store.read("ds/small.txt")) == b"a small neighbour\n"


def _leave_upload(store: Any, key: str, data: bytes) -> str:
    """An unfinished upload with its first part stored, as a copy killed mid-way leaves it."""
    upload_id = str(store.create_multipart(key, metadata={}))
    store.upload_part(key, upload_id, 1, data[:PART])
    return upload_id


@pytest.mark.timeout(90, method="thread")
@pytest.mark.parametrize("cloud", ["s3", "cos", "oss", "file"])
def test_left_over_uploads_are_reported_and_aborted_before_the_run(
    clean_services: dict[str, Any], small_parts: TransferConfig, tmp_path: Path, cloud: str
) -> None:
    if cloud == "file":
        (tmp_path / "dest").mkdir()
        dest = Location(LocalStore(str(tmp_path / "dest"), transfer=small_parts), "ds/")
    else:
        svc = clean_services[cloud]
        dest = Location(svc.store(svc.create_bucket(), transfer=small_parts), "ds/")
    (tmp_path / "src").mkdir()
    source = Location(LocalStore(str(tmp_path / "src"), transfer=small_parts), "")
    data = os.urandom(3 * PART)
    for rel in ("big.bin", "gone.bin", "excluded.bin"):
        source.store.write(rel, [data])
    # a copy killed mid-way for each, then the source object of one of them deleted
    resumed = _leave_upload(dest.store, "ds/big.bin", data)
    _leave_upload(dest.store, "ds/gone.bin", data)
    excluded = _leave_upload(dest.store, "ds/excluded.bin", data)
    outside = _leave_upload(dest.store, "other/x.bin", data)
    source.store.delete("gone.bin")

    options = ReplicationOptions(  # streamed, also between two local folders: the upload left is resumed
        copy=CopyOptions(retry_backoff=0.01, server_side=False),
        progress_interval=0,
        filters=Filters(exclude=["excluded.bin"]),
    )
    dry = replicate(source, [dest], replace(options, dry_run=True))
    assert len(dry.unfinished_uploads) == 1 and "dry run" in dry.unfinished_uploads[0]
    summary = replicate(source, [dest], options)

    (report,) = summary.unfinished_uploads
    assert "ds/gone.bin" in report and "source object no longer exists" in report and "aborted" in report
    assert b"".join(dest.store.read("ds/big.bin")) == data
    assert summary.copied == 1, "big.bin copied, resuming the upload left for it"
    left = {(u.key, u.upload_id) for u in dest.store.list_multipart_uploads("")}
    assert ("ds/big.bin", resumed) not in left
    assert left == {("ds/excluded.bin", excluded), ("other/x.bin", outside)}, (
        "a young upload whose source object exists is left alone, and so is one outside the destination"
    )

    later = datetime.now(UTC) + timedelta(hours=25)
    (stale,) = clean_uploads(source, [dest], set(), timedelta(hours=24), now=later)
    assert stale.aborted and stale.uri.endswith("ds/excluded.bin") and "older than 24h" in str(stale)
    assert {u.key for u in dest.store.list_multipart_uploads("")} == {"other/x.bin"}


@pytest.mark.timeout(90, method="thread")
@pytest.mark.parametrize("status", [403, 503])
@pytest.mark.parametrize("cloud", ["s3", "cos", "oss"])
def test_refused_source_read_ends_the_run_and_leaves_no_upload(
    clean_services: dict[str, Any], small_parts: TransferConfig, tmp_path: Path, cloud: str, status: int
) -> None:
    svc = clean_services[cloud]
    source = Location(svc.store(svc.create_bucket(), transfer=small_parts), "ds/")
    data = os.urandom(10 * PART)
    source.store.write("ds/big.bin", [data])
    dest = Location(LocalStore(str(tmp_path), transfer=small_parts), "copy/")
    code = "AccessDenied" if status == 403 else "ServiceUnavailable"
    svc.faults.add("status", operation="GetObject", key="ds/big.bin", status=status, code=code)

    options = ReplicationOptions(copy=CopyOptions(object_retries=1, retry_backoff=0.01), progress_interval=0)
    with pytest.raises(ReplicationError, match=r"copy/big\.bin"):
        replicate(source, [dest], options)
    svc.faults.clear()
    assert list(dest.store.list_multipart_uploads("")) == [], "no unfinished upload left"
    assert [o.key for o in dest.store.list("copy/") if not o.key.startswith("copy/_multicloud/")] == []
