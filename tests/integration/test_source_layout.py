"""A source proven by its multipart ETag is written in its own part layout: the part MD5s that prove the read
prove each part written too, so S3 parts go without a hash of their own (no signed payload SHA-256, no
Content-MD5), and each replica ends with the source's ETag. A flipped byte on either side is still caught.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_multicloud.replication.copy import CopyOptions
from airflow_multicloud.replication.engine import ReplicationOptions, replicate
from airflow_multicloud.replication.manifest import read_previous
from airflow_multicloud.replication.model import Location, SourceProof
from airflow_multicloud.stores.base import MiB, TransferConfig

PREFIX = "ds/"
# streamed (not one PUT), and never server-side: both buckets are on the one moto server
STREAMED = CopyOptions(object_retries=2, retry_backoff=0.01, server_side=False)
OPTS = ReplicationOptions(progress_interval=0, copy=STREAMED)


def _foreign_upload(services: dict[str, Any], data: bytes, tmp: Path, part: int) -> Location:
    """As `aws s3 cp` would: boto3's managed upload, in parts of ``part`` bytes (ours are 8 MiB)."""
    from boto3.s3.transfer import TransferConfig as BotoTransfer

    svc = services["s3"]
    loc = Location(svc.store(svc.create_bucket()), PREFIX)
    path = tmp / "upload.bin"
    path.write_bytes(data)
    config = BotoTransfer(multipart_threshold=part, multipart_chunksize=part)
    loc.store.client.upload_file(str(path), loc.store.bucket, PREFIX + "k.bin", Config=config)  # type: ignore[attr-defined]
    return loc


def _s3_dest(services: dict[str, Any]) -> tuple[Location, list[str]]:
    """An S3 destination, and the payload hash header of each UploadPart it is sent."""
    svc = services["s3"]
    store = svc.store(svc.create_bucket(), transfer=TransferConfig(multipart_threshold=16 * MiB, part_size=8 * MiB))
    hashes: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        value = request.headers.get("x-amz-content-sha256")
        hashes.append(value.decode() if isinstance(value, bytes) else str(value))
        assert "Content-MD5" not in request.headers

    store.client.meta.events.register("before-send.s3.UploadPart", capture)  # type: ignore[attr-defined]
    return Location(store, PREFIX), hashes


def _etag(loc: Location) -> str:
    return loc.store.head(PREFIX + "k.bin").etag or ""


def test_a_foreign_part_layout_is_kept_and_a_flipped_source_byte_still_caught(
    clean_services: dict[str, Any], tmp_path: Path
) -> None:
    data = os.urandom(40 * MiB)
    source = _foreign_upload(clean_services, data, tmp_path, 6 * MiB)
    assert _etag(source).strip('"').endswith("-7")
    dest, hashes = _s3_dest(clean_services)
    rule = clean_services["s3"].faults.add("flip", operation="GetObject", key=PREFIX + "k.bin", times=1)
    summary = replicate(source, [dest], OPTS)
    assert rule.fired == 1 and summary.copied == 1
    assert b"".join(dest.store.read(PREFIX + "k.bin")) == data
    assert _etag(dest) == _etag(source)  # 7 parts of 6 MiB, as the source: not 5 of our 8 MiB
    assert hashes and set(hashes) == {"UNSIGNED-PAYLOAD"}  # the source proof's part MD5s were the parts' proof
    record = read_previous(dest)["k.bin"]
    assert record["source_proof"] == SourceProof.MULTIPART_ETAG and "etag-md5" in record["verified_by"]


def test_a_byte_flipped_in_an_unhashed_part_is_caught_by_its_etag(
    clean_services: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = os.urandom(30 * MiB)
    source = _foreign_upload(clean_services, data, tmp_path, 5 * MiB)
    dest, hashes = _s3_dest(clean_services)
    rule = clean_services["s3"].faults.add("flip_request", operation="UploadPart", times=1)
    summary = replicate(source, [dest], OPTS)
    assert rule.fired == 1 and summary.copied == 1
    assert set(hashes) == {"UNSIGNED-PAYLOAD"}
    assert b"".join(dest.store.read(PREFIX + "k.bin")) == data
    assert _etag(dest) == _etag(source)
    # the first attempt failed on the flipped part's ETag, before the upload completed
    assert re.search(r"attempt 1 .* part \d+ stored with ETag [0-9a-f]{32}, its bytes have MD5", caplog.text)


def test_parts_larger_than_ours_keep_our_layout_and_the_signed_payload(
    clean_services: dict[str, Any], tmp_path: Path
) -> None:
    """Parts of 12 MiB would hold more memory than the run's budget counts for: our 8 MiB parts, hashed by S3."""
    data = os.urandom(30 * MiB)
    source = _foreign_upload(clean_services, data, tmp_path, 12 * MiB)
    dest, hashes = _s3_dest(clean_services)
    replicate(source, [dest], OPTS)
    assert b"".join(dest.store.read(PREFIX + "k.bin")) == data
    assert len(hashes) == 4 and all(len(h) == 64 for h in hashes)  # signed payload SHA-256s
    assert _etag(dest).strip('"').endswith("-4")
