"""The S3Service middleware: request log, fault injection, signature and Content-MD5 checks, corrupt()."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, IncompleteReadError, ResponseStreamingError

from airflow_multicloud.errors import IntegrityError
from airflow_multicloud.stores.s3_client import make_client
from multicloud_testbed.s3_server import S3Service
from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY


@pytest.fixture(scope="module")
def service() -> Iterator[S3Service]:
    with S3Service() as svc:
        yield svc


@pytest.fixture
def bucket(service: S3Service) -> str:
    service.faults.clear()
    name = service.create_bucket()
    service.clear_log()
    return name


@pytest.fixture
def client(service: S3Service) -> Any:
    """A client that does not retry, so each fault shows as it happened."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": 1},
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client(
        "s3",
        endpoint_url=service.endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=config,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_request_log_names_every_operation(service: S3Service, bucket: str, client: Any) -> None:
    key = "dir/a b+c%d#e?f=ü"
    client.put_object(Bucket=bucket, Key=key, Body=b"0123456789", Metadata={"m": "1"})
    client.head_object(Bucket=bucket, Key=key)
    client.get_object(Bucket=bucket, Key=key, Range="bytes=2-5")["Body"].read()
    client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.list_objects_v2(Bucket=bucket, Prefix="dir/")
    client.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": key})
    up = client.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    client.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=b"p" * 100)
    client.upload_part_copy(Bucket=bucket, Key="mp", UploadId=up, PartNumber=2, CopySource=f"{bucket}/copy")
    client.list_parts(Bucket=bucket, Key="mp", UploadId=up)
    client.list_multipart_uploads(Bucket=bucket)
    client.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=up)
    up = client.create_multipart_upload(Bucket=bucket, Key="mp2")["UploadId"]
    etag = client.upload_part(Bucket=bucket, Key="mp2", UploadId=up, PartNumber=1, Body=b"z")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    client.complete_multipart_upload(Bucket=bucket, Key="mp2", UploadId=up, MultipartUpload=parts)
    client.delete_object(Bucket=bucket, Key=key)
    client.head_bucket(Bucket=bucket)
    log = service.requests
    assert [r.operation for r in log] == [
        "PutObject",
        "HeadObject",
        "GetObject",
        "GetObject",
        "ListObjectsV2",
        "CopyObject",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "ListParts",
        "ListMultipartUploads",
        "AbortMultipartUpload",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "DeleteObject",
        "HeadBucket",
    ]
    put, _, ranged, whole = log[:4]
    assert (put.method, put.bucket, put.key, put.status, put.bytes_in) == ("PUT", bucket, key, 200, 10)
    assert (ranged.status, ranged.range, ranged.body_bytes_out) == (206, "bytes=2-5", 4)
    assert (whole.status, whole.range, whole.body_bytes_out) == (200, None, 10)
    assert log[4].query["prefix"] == "dir/" and log[4].query["list-type"] == "2"
    assert log[7].query["partNumber"] == "1" and log[7].bytes_in == 100
    assert log[-2].status == 204
    service.clear_log()
    assert service.requests == []


def test_unversioned_bucket_answers_no_null_version_id(bucket: str, client: Any) -> None:
    resp = client.put_object(Bucket=bucket, Key="k", Body=b"1")
    assert "x-amz-version-id" not in resp["ResponseMetadata"]["HTTPHeaders"]
    assert "VersionId" not in client.get_object(Bucket=bucket, Key="k")
    up = client.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    etag = client.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=1, Body=b"x")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    done = client.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=up, MultipartUpload=parts)
    assert "VersionId" not in done  # moto alone answers "null" here


def test_content_md5_is_checked(bucket: str, client: Any) -> None:
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError, match="BadDigest"):
        client.put_object(Bucket=bucket, Key="k", Body=b"data", ContentMD5=wrong)
    with pytest.raises(ClientError, match="NoSuchKey"):
        client.get_object(Bucket=bucket, Key="k")


def test_keys_over_1024_bytes_are_refused_as_s3_does(bucket: str, client: Any) -> None:
    """S3 keys are at most 1024 bytes of UTF-8 (moto takes any length): longer ones get 400 KeyTooLongError, for
    single and multipart uploads and copies alike; 1024 bytes, counted in UTF-8, still work."""
    longest = "k/" + "é" * 511  # 2 + 1022 = 1024 bytes
    client.put_object(Bucket=bucket, Key=longest, Body=b"x")
    too_long = longest + "x"
    attempts = {
        "PutObject": lambda: client.put_object(Bucket=bucket, Key=too_long, Body=b"x"),
        "CopyObject": lambda: client.copy_object(
            Bucket=bucket, Key=too_long, CopySource={"Bucket": bucket, "Key": longest}
        ),
        "CreateMultipartUpload": lambda: client.create_multipart_upload(Bucket=bucket, Key=too_long),
    }
    for operation, attempt in attempts.items():
        with pytest.raises(ClientError) as refused:
            attempt()
        error = refused.value.response
        assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("KeyTooLongError", 400), (
            operation
        )
    listed = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert listed == [longest]


def test_flipped_request_byte_is_caught_by_content_md5_or_payload_hash(service: S3Service, bucket: str) -> None:
    store = service.store(bucket)
    service.faults.add("flip_request", operation="PutObject", times=1)
    with pytest.raises(IntegrityError, match=r"BadDigest|XAmzContentSHA256Mismatch"):
        store.put_object("k", b"0123456789", metadata={})
    store.put_object("k", b"0123456789", metadata={})
    assert [r.status for r in service.requests] == [400, 200]


def test_signatures_are_checked(service: S3Service, bucket: str) -> None:
    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
        service.client(secret="wrong").list_objects_v2(Bucket=bucket)
    stranger = make_client("UNKNOWNKEY", "whatever", None, "us-east-1", service.endpoint)
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        stranger.list_objects_v2(Bucket=bucket)
    assert [r.status for r in service.requests] == [403, 403]


def test_status_fault_then_recovery(service: S3Service, bucket: str, client: Any) -> None:
    rule = service.faults.add("status", operation="PutObject", key="k*", status=503, code="SlowDown", times=1)
    with pytest.raises(ClientError, match="SlowDown"):
        client.put_object(Bucket=bucket, Key="k1", Body=b"1")
    client.put_object(Bucket=bucket, Key="k1", Body=b"1")
    client.put_object(Bucket=bucket, Key="other", Body=b"1")
    assert rule.fired == 1
    assert [r.status for r in service.requests] == [503, 200, 200]


def test_reset_request_fault(service: S3Service, bucket: str, client: Any) -> None:
    service.faults.add("reset_request", operation="PutObject", times=1)
    with pytest.raises(Exception, match=r"(?i)connection|reset|aborted"):
        client.put_object(Bucket=bucket, Key="k", Body=b"x" * 100_000)
    client.put_object(Bucket=bucket, Key="k", Body=b"x" * 100_000)
    first, second = service.requests
    assert (first.status, first.bytes_in) == (0, 50_000)
    assert (second.status, second.bytes_in) == (200, 100_000)


def test_response_body_faults(service: S3Service, bucket: str, client: Any) -> None:
    data = os.urandom(100_000)
    client.put_object(Bucket=bucket, Key="k", Body=data)
    service.faults.add("flip", operation="GetObject", times=1)
    flipped = client.get_object(Bucket=bucket, Key="k")["Body"].read()
    assert len(flipped) == len(data) and sum(a != b for a, b in zip(flipped, data, strict=True)) == 1
    for kind in ("truncate", "reset"):
        service.faults.add(kind, operation="GetObject", times=1)
        with pytest.raises((IncompleteReadError, ResponseStreamingError)):
            client.get_object(Bucket=bucket, Key="k")["Body"].read()
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == data
    assert [r.body_bytes_out for r in service.requests if r.operation == "GetObject"] == [
        100_000,
        50_000,
        50_000,
        100_000,
    ]


def test_latency_fault(service: S3Service, bucket: str, client: Any) -> None:
    service.faults.add("latency", operation="HeadBucket", latency=0.3, times=1)
    start = time.monotonic()
    client.head_bucket(Bucket=bucket)
    assert time.monotonic() - start >= 0.3


def test_corrupt_flips_a_byte_and_keeps_the_etag(service: S3Service, bucket: str, client: Any) -> None:
    client.put_object(Bucket=bucket, Key="k", Body=b"abcdef")
    etag = client.head_object(Bucket=bucket, Key="k")["ETag"]
    service.corrupt(bucket, "k", 2)
    resp = client.get_object(Bucket=bucket, Key="k")
    assert resp["Body"].read() == b"ab\x9cdef" and resp["ETag"] == etag


def test_services_share_moto_state_but_not_bucket_names(service: S3Service) -> None:
    with S3Service() as other:
        mine, theirs = service.create_bucket(), other.create_bucket()
        assert mine != theirs and other.endpoint != service.endpoint
        names = {b["Name"] for b in other.client().list_buckets()["Buckets"]}
        assert {mine, theirs} <= names  # moto's S3 state is per process, not per server


def test_runs_as_its_own_process() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "multicloud_testbed.s3_server", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and ACCESS_KEY in proc.stdout.readline()
        remote = make_client(ACCESS_KEY, SECRET_KEY, None, "us-east-1", f"http://127.0.0.1:{port}")
        remote.create_bucket(Bucket="in-its-own-process")
        remote.put_object(Bucket="in-its-own-process", Key="k", Body=b"1")
        assert remote.get_object(Bucket="in-its-own-process", Key="k")["Body"].read() == b"1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
