"""S3Store against moto's real S3 server over HTTP, through boto3 and with obstore's GET and PUT (no mocks)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_multicloud.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    IntegrityError,
    ObjectNotFoundError,
    StoreError,
    TransientStoreError,
)
from airflow_multicloud.stores.base import MiB, TransferConfig
from airflow_multicloud.stores.s3 import S3Store
from multicloud_testbed.s3_server import S3Service
from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

TRANSFER = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB, max_concurrency=2)
KEYS = ["a b/c d.txt", "ünïcødé/日本語/✓.bin", "x+y%z#w?q=1&r=2", "k" * 1024, "k/" * 512]


@pytest.fixture(scope="module")
def service() -> Iterator[S3Service]:
    with S3Service() as svc:
        yield svc


def s3(service: S3Service, bucket: str, data_client: str, *, secret: str = SECRET_KEY, label: str = "") -> S3Store:
    return S3Store.from_settings(
        bucket,
        access_key_id=ACCESS_KEY,
        secret_access_key=secret,
        region=service.region,
        endpoint_url=service.endpoint,
        label=label or "aws_test_conn",
        transfer=TRANSFER,
        data_client=data_client,
    )


@pytest.fixture(params=["obstore", "boto3"])
def data_client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(service: S3Service, data_client: str) -> S3Store:
    service.faults.clear()
    service.clear_log()
    s = s3(service, service.create_bucket(), data_client)
    assert (s._fast is not None) == (data_client == "obstore")
    return s


def ops(service: S3Service, name: str) -> int:
    return sum(1 for r in service.requests if r.operation == name)


@pytest.mark.parametrize("key", KEYS, ids=["spaces", "unicode", "specials", "1024-bytes", "1024-deep"])
def test_every_key_round_trips(store: S3Store, key: str) -> None:
    assert len(key.encode()) <= 1024
    etag = store.put_object(key, b"payload", metadata={"Origin": "test"}, content_type="text/plain")
    info = store.head(key)
    assert (info.key, info.size, info.etag, info.crc64) == (key, 7, etag, None)
    assert info.metadata == {"origin": "test"}
    assert b"".join(store.read(key)) == b"payload"
    assert [o.key for o in store.list()] == [key]
    assert [o.key for o in store.list(key[:3])] == [key]
    store.delete(key)
    assert list(store.list()) == []


def test_zero_byte_object(store: S3Store) -> None:
    result = store.write("empty", [])
    assert (result.size, result.parts) == (0, 0)
    assert store.head("empty").size == 0
    assert b"".join(store.read("empty")) == b""


@pytest.mark.parametrize(("size", "parts"), [(5 * MiB - 1, 0), (5 * MiB, 1), (5 * MiB + 1, 2)])
def test_write_around_multipart_threshold(store: S3Store, service: S3Service, size: int, parts: int) -> None:
    data = os.urandom(size)
    result = store.write("obj", (data[i : i + 700_000] for i in range(0, size, 700_000)), metadata={"k": "v"})
    assert result.parts == parts
    assert ops(service, "UploadPart") == parts
    assert (store.head("obj").size, store.head("obj").metadata) == (size, {"k": "v"})
    assert b"".join(store.read("obj")) == data
    assert list(store.list_multipart_uploads()) == []


def test_read_ranges(store: S3Store, service: S3Service) -> None:
    data = bytes(range(256)) * 40
    store.put_object("r", data, metadata={})
    assert b"".join(store.read("r", 10, 20)) == data[10:20]
    assert b"".join(store.read("r", 10000)) == data[10000:]
    assert b"".join(store.read("r", 0, 5)) == data[:5]
    assert b"".join(store.read("r", 7, 7)) == b""
    assert b"".join(store.read("r", chunk_size=1000)) == data
    assert [len(c) for c in store.read("r", 5, chunk_size=1000)] == [1000] * 10 + [235]
    assert [r.range for r in service.requests if r.operation == "GetObject"] == [
        "bytes=10-19",
        "bytes=10000-",
        "bytes=0-4",
        None,
        "bytes=5-",
    ]


def test_listing_2500_keys_is_paged_lazily_in_key_order(store: S3Store, service: S3Service) -> None:
    keys = [f"p/{i % 7}/{i:05d}-{'é' if i % 3 else 'z'}" for i in range(2500)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: store.put_object(k, b"x", metadata={}), keys))
    service.clear_log()
    listing = store.list("p/")
    next(listing)
    assert ops(service, "ListObjectsV2") == 1
    assert [o.key for o in store.list()] == sorted(keys)
    assert ops(service, "ListObjectsV2") == 1 + 3
    assert [o.key for o in store.list("p/3/")] == sorted(k for k in keys if k.startswith("p/3/"))


def test_copy_keeps_or_replaces_metadata(store: S3Store) -> None:
    store.put_object("src", b"abc", metadata={"a": "1"}, content_type="text/csv")
    kept = store.copy("src", "kept")
    assert kept.size == 3 and kept.metadata == {"a": "1"}
    assert store.head("kept").metadata == {"a": "1"}
    store.copy("src", "replaced", metadata={"b": "2"})
    assert store.head("replaced").metadata == {"b": "2"}
    assert store.client.head_object(Bucket=store.bucket, Key="replaced")["ContentType"] == "text/csv"
    with pytest.raises(ObjectNotFoundError, match="no such source"):
        store.copy("missing", "x")


def test_copy_above_copy_threshold_uses_upload_part_copy(store: S3Store, service: S3Service) -> None:
    data = os.urandom(12 * MiB)
    store.write("big", [data], metadata={"m": "x"})
    store.copy_threshold = 5 * MiB  # type: ignore[misc] - as for an object above S3's 5 GiB CopyObject limit
    service.clear_log()
    info = store.copy("big", "big-copy")
    assert ops(service, "UploadPartCopy") == 3 and ops(service, "CopyObject") == 0
    assert info.size == len(data) and store.head("big-copy").metadata == {"m": "x"}
    assert b"".join(store.read("big-copy")) == data


def test_copy_from_other_bucket_same_endpoint(store: S3Store, service: S3Service) -> None:
    other = service.store(service.create_bucket(), transfer=TRANSFER)
    other.put_object("k", b"data", metadata={"z": "1"})
    assert other.endpoint_id == store.endpoint_id
    service.clear_log()
    store.copy_from(other, "k", "copied")
    assert ops(service, "CopyObject") == 1 and ops(service, "GetObject") == 0
    assert b"".join(store.read("copied")) == b"data"


def test_copy_from_another_endpoint_is_refused(store: S3Store) -> None:
    with S3Service() as second:
        elsewhere = second.store(second.create_bucket())
        elsewhere.put_object("k", b"1", metadata={})
        assert elsewhere.endpoint_id != store.endpoint_id
        with pytest.raises(StoreError, match="cannot copy server-side"):
            store.copy_from(elsewhere, "k", "k")


def test_multipart_primitives_and_list_parts_pages(store: S3Store) -> None:
    upload_id = store.create_multipart("mp", metadata={"x": "y"})
    assert [(u.key, u.upload_id) for u in store.list_multipart_uploads()] == [("mp", upload_id)]
    with ThreadPoolExecutor(8) as pool:
        etags = list(pool.map(lambda n: store.upload_part("mp", upload_id, n, bytes([n % 256])), range(1, 1002)))
    parts = store.list_parts("mp", upload_id)
    assert [p.number for p in parts] == list(range(1, 1002))
    assert [p.etag for p in parts] == etags
    store.abort_multipart("mp", upload_id)
    store.abort_multipart("mp", upload_id)  # already gone: still fine
    assert list(store.list_multipart_uploads()) == []
    upload_id = store.create_multipart("mp2", metadata={})
    part = store.upload_part("mp2", upload_id, 1, b"tail")
    parts = store.list_parts("mp2", upload_id)
    assert parts[0].etag == part
    store.complete_multipart("mp2", upload_id, parts)
    assert b"".join(store.read("mp2")) == b"tail"


def test_missing_object_and_delete_of_absent(store: S3Store) -> None:
    with pytest.raises(ObjectNotFoundError, match=f"s3://{store.bucket}/nope"):
        store.head("nope")
    with pytest.raises(ObjectNotFoundError, match=f"s3://{store.bucket}/nope"):
        b"".join(store.read("nope"))
    store.delete("nope")


def test_missing_bucket(service: S3Service, data_client: str) -> None:
    ghost = s3(service, "no-such-bucket-here", data_client, label="aws_ghost")
    for call in (lambda: ghost.head("k"), lambda: list(ghost.list()), lambda: b"".join(ghost.read("k"))):
        with pytest.raises(BucketNotFoundError, match=r"'no-such-bucket-here'.*aws_ghost"):
            call()
    with pytest.raises(BucketNotFoundError, match="no-such-bucket-here"):
        ghost.put_object("k", b"1", metadata={})


def test_wrong_secret_is_access_denied_naming_the_label(service: S3Service, store: S3Store) -> None:
    store.put_object("k", b"1", metadata={})
    bad = s3(service, store.bucket, store.data_client, secret="not-the-secret-at-all", label="aws_prod_conn")
    calls = (
        lambda: bad.head("k"),
        lambda: list(bad.list()),
        lambda: bad.put_object("k", b"2", metadata={}),
        lambda: b"".join(bad.read("k")),
    )
    for call in calls:
        with pytest.raises(AccessDeniedError, match=r"aws_prod_conn.*signature was rejected.*secret") as err:
            call()
        assert "not-the-secret-at-all" not in str(err.value) and SECRET_KEY not in str(err.value)
    assert b"".join(store.read("k")) == b"1"


def test_failing_upload_part_leaves_no_object_and_no_upload(store: S3Store, service: S3Service) -> None:
    service.faults.add("status", operation="UploadPart", status=500, code="InternalError")
    with pytest.raises(TransientStoreError, match="500 InternalError"):
        store.write("doomed", [os.urandom(11 * MiB)])
    service.faults.clear()
    assert ops(service, "AbortMultipartUpload") == 1
    assert list(store.list_multipart_uploads()) == []
    with pytest.raises(ObjectNotFoundError):
        store.head("doomed")


def test_resume_sends_only_missing_parts(store: S3Store, service: S3Service) -> None:
    data = os.urandom(26 * MiB)  # 6 parts of 5 MiB, the last one 1 MiB
    chunks = [data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]

    def broken() -> Iterator[bytes]:
        yield from chunks[:3]
        raise OSError("source went away")

    one_at_a_time = S3Store(store.client, store.bucket, transfer=TransferConfig(5 * MiB, 5 * MiB, max_concurrency=1))
    with pytest.raises(OSError, match="source went away"):
        one_at_a_time.write("r", broken(), resume=True)
    [upload] = store.list_multipart_uploads()
    stored = len(store.list_parts("r", upload.upload_id))
    assert stored in (2, 3) and ops(service, "UploadPart") == stored  # part 3 may be cancelled before it starts
    service.clear_log()
    result = one_at_a_time.write("r", iter(chunks), resume=True)
    assert (result.parts, result.parts_reused) == (6, stored)
    assert ops(service, "UploadPart") == 6 - stored and ops(service, "CreateMultipartUpload") == 0
    assert b"".join(store.read("r")) == data
    assert list(store.list_multipart_uploads()) == []


def test_error_mapping_of_injected_faults(store: S3Store, service: S3Service) -> None:
    store.put_object("k", b"0123456789", metadata={})
    service.faults.add("status", operation="PutObject", status=400, code="BadDigest", times=1)
    with pytest.raises(IntegrityError, match="BadDigest"):
        store.put_object("k2", b"x", metadata={})
    service.faults.add("status", operation="HeadObject", status=503, code="SlowDown")
    with pytest.raises(TransientStoreError):
        store.head("k")
    service.faults.clear()
    for kind in ("truncate", "reset"):
        service.faults.clear()
        service.clear_log()
        service.faults.add(kind, operation="GetObject", times=1)
        if store.data_client == "obstore":  # obstore asks again for the rest of a cut body (a ranged GET)
            assert b"".join(store.read("k")) == b"0123456789" and ops(service, "GetObject") == 2
        else:
            with pytest.raises(TransientStoreError, match="connection problem"):
                b"".join(store.read("k"))
        service.faults.add(kind, operation="GetObject")  # every attempt
        with pytest.raises(TransientStoreError, match="connection problem"):
            b"".join(store.read("k"))


def test_connection_refused_is_transient() -> None:
    dead = S3Store.from_settings("b", access_key_id="a", secret_access_key="s", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(TransientStoreError, match="connection problem"):
        dead.head("k")
    for call in (lambda: b"".join(dead.read("k")), lambda: dead.put_object("k", b"1", metadata={})):
        with pytest.raises(TransientStoreError, match="connection problem"):
            call()


def test_ca_bundle_does_not_matter_for_http(service: S3Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", "/nonexistent/ca-bundle.pem")
    s = service.store(service.create_bucket())
    s.put_object("k", b"1", metadata={})
    assert s.head("k").size == 1


def test_store_from_airflow_connection(service: S3Service, store: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_multicloud.hooks.s3 import s3_store_from_connection

    monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", json.dumps(service.connection("aws_test")))
    from_conn = s3_store_from_connection("aws_test", store.bucket, transfer=TRANSFER)
    assert (from_conn.label, from_conn.transfer) == ("aws_test", TRANSFER)
    assert from_conn.endpoint_id == store.endpoint_id
    from_conn.put_object("via-hook", b"hi", metadata={"a": "b"})
    assert store.head("via-hook").metadata == {"a": "b"}
    bad = dict(service.connection("aws_bad"), password="wrong-secret")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_BAD", json.dumps(bad))
    with pytest.raises(AccessDeniedError, match="aws_bad"):
        s3_store_from_connection("aws_bad", store.bucket).head("via-hook")
