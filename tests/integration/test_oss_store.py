"""OssStore through the ObjectStore interface, over real oss2 and HTTP against the local OSS server."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator

import pytest

from airflow_multicloud.checksums import crc64
from airflow_multicloud.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    IntegrityError,
    InvalidKeyError,
    ObjectNotFoundError,
    StoreError,
    TransientStoreError,
)
from airflow_multicloud.hooks.oss import CONNECTION_TYPE, OssConnectionError, OssHook
from airflow_multicloud.stores.base import MiB, PartInfo, TransferConfig, check_integrity
from airflow_multicloud.stores.oss import OssStore
from multicloud_testbed.oss_server import OssService
from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

TRANSFER = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB)
ODD_KEYS = ["with space/and more.txt", "ünïcødé/文件.csv", "plus+percent%hash#query?eq=", "a+b=c&d", "~/.x"]


@pytest.fixture(scope="module")
def server() -> Iterator[OssService]:
    with OssService() as svc:
        yield svc


@pytest.fixture(autouse=True)
def _clean(server: OssService) -> Iterator[None]:
    server.faults.clear()
    server.clear_log()
    yield
    server.faults.clear()


@pytest.fixture(params=["v4", "v1"])
def store(request: pytest.FixtureRequest, server: OssService) -> OssStore:
    return server.store(server.create_bucket(), transfer=TRANSFER, label="oss_test", auth_version=request.param)


def count(server: OssService, operation: str) -> int:
    return sum(1 for r in server.requests if r.operation == operation)


# ---- every operation ---------------------------------------------------------------------------------
def test_put_head_read_list_delete(store: OssStore) -> None:
    data = os.urandom(100_000)
    result = store.write("d/obj.bin", [data[:10], data[10:]], metadata={"Source-CRC": "abc"})
    info = store.head("d/obj.bin")
    check_integrity(store, "d/obj.bin", result, info)
    assert (info.size, info.crc64, info.metadata) == (len(data), crc64(data), {"source-crc": "abc"})
    assert info.etag and info.last_modified is not None
    assert b"".join(store.read("d/obj.bin", chunk_size=4096)) == data
    assert b"".join(store.read("d/obj.bin", 1000, 2000)) == data[1000:2000]
    assert b"".join(store.read("d/obj.bin", 99_990)) == data[99_990:]
    assert b"".join(store.read("d/obj.bin", 5, 5)) == b""
    assert [o.key for o in store.list("d/")] == ["d/obj.bin"]
    assert [o.size for o in store.list()] == [len(data)]
    store.delete("d/obj.bin")
    store.delete("d/obj.bin")
    with pytest.raises(ObjectNotFoundError, match=r"oss://.*/d/obj\.bin"):
        store.head("d/obj.bin")
    with pytest.raises(ObjectNotFoundError, match=r"d/obj\.bin"):
        b"".join(store.read("d/obj.bin"))


def test_zero_byte_object(store: OssStore) -> None:
    result = store.write("empty", [])
    assert (result.size, result.parts) == (0, 0)
    info = store.head("empty")
    assert (info.size, info.crc64) == (0, 0)
    assert b"".join(store.read("empty")) == b""


def test_copy_and_copy_from(store: OssStore, server: OssService) -> None:
    store.write("src", [b"payload"], metadata={"k": "v"})
    kept = store.copy("src", "kept")
    assert (kept.size, kept.crc64, kept.metadata) == (7, crc64(b"payload"), {"k": "v"})
    replaced = store.copy("src", "replaced", metadata={"new": "1"})
    assert replaced.metadata == {"new": "1"}
    other = server.store(server.create_bucket(), label="oss_test")
    assert other.endpoint_id == store.endpoint_id and server.endpoint in other.endpoint_id
    server.clear_log()
    across = other.copy_from(store, "src", "across")
    assert count(server, "CopyObject") == 1 and count(server, "GetObject") == 0
    assert across.crc64 == crc64(b"payload") and b"".join(other.read("across")) == b"payload"
    with pytest.raises(ObjectNotFoundError, match=r"oss://.*/missing"):
        store.copy("missing", "x")


def test_large_copy_goes_part_by_part(store: OssStore, server: OssService, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(12 * MiB)
    store.write("big", [data])
    monkeypatch.setattr(OssStore, "copy_part_threshold", 8 * MiB)
    server.clear_log()
    info = store.copy("big", "big-copy", metadata={"m": "1"})
    assert count(server, "UploadPartCopy") == 3 and count(server, "CopyObject") == 0
    assert (info.size, info.crc64, info.metadata) == (len(data), crc64(data), {"m": "1"})


def test_multipart_primitives(store: OssStore) -> None:
    upload_id = store.create_multipart("mp", metadata={"a": "b"}, content_type="text/csv")
    assert [(u.key, u.upload_id) for u in store.list_multipart_uploads("m")] == [("mp", upload_id)]
    chunks = [os.urandom(200_000), os.urandom(50)]
    etags = [store.upload_part("mp", upload_id, n, c) for n, c in enumerate(chunks, start=1)]
    parts = store.list_parts("mp", upload_id)
    assert [(p.number, p.size, p.etag) for p in parts] == [(1, 200_000, etags[0]), (2, 50, etags[1])]
    store.complete_multipart(
        "mp", upload_id, [PartInfo(n, len(c), e) for n, (c, e) in enumerate(zip(chunks, etags, strict=True), 1)]
    )
    info = store.head("mp")
    assert (info.crc64, info.metadata) == (crc64(b"".join(chunks)), {"a": "b"})
    assert list(store.list_multipart_uploads()) == []
    other = store.create_multipart("gone", metadata={})
    store.abort_multipart("gone", other)
    assert list(store.list_multipart_uploads()) == []


# ---- keys --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", [*ODD_KEYS, "k" * 1023, "é" * 511 + "k"], ids=[*ODD_KEYS, "1023-ascii", "1023-utf8"])
def test_odd_keys_round_trip(store: OssStore, key: str) -> None:
    store.write(key, [key.encode()])
    assert store.head(key).size == len(key.encode())
    assert b"".join(store.read(key)) == key.encode()
    assert [o.key for o in store.list()] == [key]
    copy = key + ".copy" if len(key.encode()) < 1000 else key[:-5] + "#copy"
    assert store.copy(key, copy).size == len(key.encode())
    assert sorted(o.key for o in store.list()) == sorted([key, copy])
    store.delete(key)
    assert [o.key for o in store.list()] == [copy]


def test_key_over_1023_bytes_is_invalid(store: OssStore) -> None:
    with pytest.raises(InvalidKeyError, match="1023"):
        store.write("k" * 1024, [b"x"])


# ---- sizes around the multipart threshold --------------------------------------------------------------
@pytest.mark.parametrize(("delta", "parts"), [(-1, 0), (0, 1), (1, 2)])
def test_threshold_edges(store: OssStore, server: OssService, delta: int, parts: int) -> None:
    data = os.urandom(TRANSFER.multipart_threshold + delta)
    result = store.write("edge", (data[i : i + MiB] for i in range(0, len(data), MiB)))
    assert (result.parts, result.size, result.crc64) == (parts, len(data), crc64(data))
    assert count(server, "UploadPart") == parts and count(server, "PutObject") == (0 if parts else 1)
    check_integrity(store, "edge", result, store.head("edge"))
    assert b"".join(store.read("edge")) == data


def test_list_2500_keys_across_pages(server: OssService) -> None:
    store = server.store(server.create_bucket())
    keys = sorted(f"p/{i:05d}" for i in range(2500))
    for key in keys:  # straight to disk: this test is about listing
        server.server.buckets.put(store.bucket, key, io.BytesIO(b"x"), 1)
    server.clear_log()
    listing = store.list("p/")
    first = next(listing)
    assert count(server, "ListObjectsV2") == 1  # lazy: one page fetched so far
    assert [first.key, *(o.key for o in listing)] == keys
    assert count(server, "ListObjectsV2") == 3


# ---- errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("auth", ["v1", "v4"])
def test_wrong_secret_names_the_label(server: OssService, auth: str) -> None:
    store = server.store(server.create_bucket(), secret="wrong-secret-value", label="oss_prod", auth_version=auth)
    with pytest.raises(AccessDeniedError) as info:
        store.write("k", [b"x"])
    message = str(info.value)
    assert "oss_prod" in message and "signature" in message and "secret" in message
    assert "wrong-secret-value" not in message and SECRET_KEY not in message
    with pytest.raises(AccessDeniedError, match="oss_prod"):
        store.head("k")
    with pytest.raises(AccessDeniedError, match="oss_prod"):
        list(store.list())


def test_missing_bucket_names_bucket_and_label(server: OssService) -> None:
    store = server.store("mc-never-created", label="oss_prod")
    for call in (lambda: list(store.list()), lambda: store.head("k"), lambda: store.write("k", [b"x"])):
        with pytest.raises(BucketNotFoundError, match="mc-never-created") as info:
            call()
        assert "oss_prod" in str(info.value)


def test_transient_and_integrity_errors(store: OssStore, server: OssService) -> None:
    server.faults.add("status", operation="HeadObject", status=503, code="SlowDown", times=1)
    with pytest.raises(TransientStoreError) as info:
        store.head("k")
    assert info.value.retryable
    store.write("k", [os.urandom(50_000)])
    server.faults.add("flip", operation="GetObject", times=1)
    with pytest.raises(IntegrityError):
        b"".join(store.read("k"))
    server.faults.add("truncate", operation="GetObject", times=1)
    with pytest.raises(TransientStoreError):
        b"".join(store.read("k"))
    dead = OssStore.from_settings(
        store.bucket, access_key_id=ACCESS_KEY, access_key_secret=SECRET_KEY, endpoint="http://127.0.0.1:9", region="x"
    )
    with pytest.raises(TransientStoreError):
        dead.head("k")


def test_failing_upload_part_leaves_nothing(store: OssStore, server: OssService) -> None:
    server.faults.add("status", operation="UploadPart", status=500, code="InternalError")
    with pytest.raises(TransientStoreError):
        store.write("never", [os.urandom(12 * MiB)])
    server.faults.clear()
    with pytest.raises(ObjectNotFoundError):
        store.head("never")
    assert list(store.list_multipart_uploads()) == []
    assert count(server, "AbortMultipartUpload") == 1


def test_resume_sends_only_missing_parts(server: OssService) -> None:
    store = server.store(server.create_bucket(), transfer=TransferConfig(5 * MiB, 5 * MiB, max_concurrency=1))
    data = os.urandom(5 * 5 * MiB + 100)

    def failing() -> Iterator[bytes]:
        for i in range(0, len(data), MiB):
            if i == 17 * MiB:  # while part 4 is read, parts 1 and 2 are surely stored; part 3 may still be in flight
                server.faults.add("status", operation="UploadPart", status=503, code="SlowDown")
            yield data[i : i + MiB]

    with pytest.raises(StoreError):
        store.write("resumable", failing(), resume=True)
    server.faults.clear()
    (upload,) = store.list_multipart_uploads()
    stored = len(store.list_parts("resumable", upload.upload_id))
    assert stored >= 2
    server.clear_log()
    result = store.write("resumable", [data], resume=True)
    assert (result.parts, result.parts_reused) == (6, stored)
    assert count(server, "UploadPart") == 6 - stored and count(server, "InitiateMultipartUpload") == 0
    check_integrity(store, "resumable", result, store.head("resumable"))
    assert list(store.list_multipart_uploads()) == []


# ---- the hook ----------------------------------------------------------------------------------------
def test_hook_from_env_connection(server: OssService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OSS_TEST", json.dumps(server.connection("oss_test")))
    store = OssHook("oss_test").get_store(server.create_bucket(), transfer=TRANSFER)
    assert store.label == "oss_test" and store.transfer == TRANSFER
    store.write("k", [b"via hook"])
    assert b"".join(store.read("k")) == b"via hook"


def test_hook_from_alibaba_provider_connection(server: OssService, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"auth_type": "AK", "access_key_id": ACCESS_KEY, "access_key_secret": SECRET_KEY, "region": "cn-hangzhou"}
    monkeypatch.setenv("AIRFLOW_CONN_ALIYUN", json.dumps({"conn_type": "oss", "extra": extra}))
    settings = OssHook("aliyun").get_settings()
    assert (settings.endpoint, settings.region, settings.auth_version) == (
        "https://oss-cn-hangzhou.aliyuncs.com",
        "cn-hangzhou",
        "v4",
    )
    assert SECRET_KEY not in repr(settings)
    local = {"conn_type": "oss", "extra": {**extra, "endpoint": server.endpoint}}
    monkeypatch.setenv("AIRFLOW_CONN_ALIYUN", json.dumps(local))
    store = OssHook("aliyun").get_store(server.create_bucket())
    store.write("k", [b"alibaba-shaped"])
    assert store.head("k").size == 14


@pytest.mark.parametrize(
    ("conn", "needle"),
    [
        ({"conn_type": "multicloud_oss", "password": "s", "extra": {"region": "cn-hangzhou"}}, "AccessKey ID"),
        ({"conn_type": "multicloud_oss", "login": "a", "extra": {"region": "cn-hangzhou"}}, "AccessKey secret"),
        ({"conn_type": "multicloud_oss", "login": "a", "password": "s"}, "region"),
        (
            {"conn_type": "multicloud_oss", "login": "a", "password": "s", "extra": {"endpoint": "http://1.2.3.4"}},
            "region",
        ),
        (
            {
                "conn_type": "multicloud_oss",
                "login": "a",
                "password": "s",
                "extra": {"region": "r", "auth_version": "v2"},
            },
            "v2",
        ),
    ],
)
def test_hook_names_connection_and_missing_field(monkeypatch: pytest.MonkeyPatch, conn: dict, needle: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OSS_BROKEN", json.dumps(conn))
    with pytest.raises(OssConnectionError, match="oss_broken") as info:
        OssHook("oss_broken").get_store("mc-bucket")
    assert needle in str(info.value)


def test_v1_connection_needs_no_region(server: OssService, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "multicloud_oss", "login": ACCESS_KEY, "password": SECRET_KEY}
    conn["extra"] = {"endpoint": server.endpoint, "auth_version": "v1"}  # type: ignore[assignment]
    monkeypatch.setenv("AIRFLOW_CONN_OSS_V1", json.dumps(conn))
    store = OssHook("oss_v1").get_store(server.create_bucket())
    store.write("k", [b"v1"])
    assert b"".join(store.read("k")) == b"v1"


def test_connection_type_validates_against_airflow_schema() -> None:
    import importlib.resources

    import jsonschema

    for name in ("provider.yaml.schema.json", "provider_info.schema.json"):
        schema = json.loads(importlib.resources.files("airflow").joinpath(name).read_text())
        jsonschema.validate(CONNECTION_TYPE, schema["properties"]["connection-types"]["items"])
    assert CONNECTION_TYPE["connection-type"] == OssHook.conn_type
    assert CONNECTION_TYPE["conn-fields"]["security_token"]["schema"]["format"] == "password"
