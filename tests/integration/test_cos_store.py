"""CosStore through the ObjectStore interface, over the real SDK and HTTP against the local COS server."""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Iterator

import pytest

from airflow_multicloud.checksums import crc64
from airflow_multicloud.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    InvalidKeyError,
    ObjectNotFoundError,
    StoreError,
    TransientStoreError,
)
from airflow_multicloud.stores.base import MiB, TransferConfig, check_integrity
from airflow_multicloud.stores.cos import CosStore
from multicloud_testbed.cos_server import CosService
from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

SMALL = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB, max_concurrency=2)
LABEL = "cos_test_conn"
ODD_KEYS = [
    "with space.txt",
    "unicode/数据/ü/é.csv",
    "a+b%20c#d?e=f&g",
    "plus+/percent%/hash#/question?/equals=",
    # COS keys are at most 850 bytes; these leave room for the ".copy" the test appends
    "x" * 845,
    "dir/" + "数" * 280,  # 844 bytes of UTF-8
]


@pytest.fixture(scope="module")
def svc() -> Iterator[CosService]:
    service = CosService().start()
    yield service
    service.stop()


@pytest.fixture(autouse=True)
def _clean(svc: CosService) -> Iterator[None]:
    svc.faults.clear()
    _settle(svc)
    svc.clear_log()
    yield
    svc.faults.clear()


@pytest.fixture
def bucket(svc: CosService) -> str:
    return svc.create_bucket()


@pytest.fixture
def store(svc: CosService, bucket: str) -> CosStore:
    return svc.store(bucket, transfer=SMALL, label=LABEL)


def _settle(svc: CosService) -> None:
    """The server logs a request just after answering it: wait until the log stops growing."""
    seen = -1
    while seen != len(svc.requests):
        seen = len(svc.requests)
        time.sleep(0.05)


def _ops(svc: CosService, operation: str) -> int:
    _settle(svc)
    return sum(1 for r in svc.requests if r.operation == operation)


def test_every_operation(svc: CosService, store: CosStore) -> None:
    sent = store.write("data/a.csv", [b"id,name\n", b"1,x\n"], metadata={"Source": "unit"}, content_type="text/csv")
    info = store.head("data/a.csv")
    check_integrity(store, "data/a.csv", sent, info)
    assert (info.size, info.crc64, info.etag) == (12, crc64(b"id,name\n1,x\n"), sent.md5)
    assert info.metadata == {"source": "unit"} and info.last_modified is not None
    assert b"".join(store.read("data/a.csv")) == b"id,name\n1,x\n"
    assert b"".join(store.read("data/a.csv", 3, 7)) == b"name"
    assert b"".join(store.read("data/a.csv", 8)) == b"1,x\n"
    assert b"".join(store.read("data/a.csv", 5, 5)) == b""
    assert [o.key for o in store.list("data/")] == ["data/a.csv"]

    kept = store.copy("data/a.csv", "data/b.csv")
    assert (kept.crc64, kept.metadata) == (info.crc64, {"source": "unit"})
    replaced = store.copy("data/a.csv", "data/c.csv", metadata={"Team": "ops"})
    assert replaced.metadata == {"team": "ops"}
    assert svc.server.buckets.head(store.bucket, "data/c.csv").content_type == "text/csv"

    other = svc.store(svc.create_bucket(), label=LABEL)
    assert other.endpoint_id == store.endpoint_id
    _settle(svc)
    svc.clear_log()
    copied = other.copy_from(store, "data/a.csv", "in/other.csv")
    assert copied.crc64 == info.crc64 and _ops(svc, "CopyObject") == 1 and _ops(svc, "GetObject") == 0

    store.delete("data/b.csv")
    store.delete("data/b.csv")  # absent: not an error
    assert [o.key for o in store.list()] == ["data/a.csv", "data/c.csv"]
    with pytest.raises(ObjectNotFoundError, match=re.escape(f"cos://{store.bucket}/data/b.csv")):
        store.head("data/b.csv")
    with pytest.raises(ObjectNotFoundError, match=re.escape("data/b.csv")):
        store.read("data/b.csv")


@pytest.mark.parametrize("key", ODD_KEYS, ids=["space", "unicode", "plus-percent", "specials", "845-ascii", "844-utf8"])
def test_odd_keys_round_trip(svc: CosService, store: CosStore, key: str) -> None:
    assert len(key.encode()) + len(".copy") <= 850
    data = key.encode() * 3
    store.write(key, [data])
    assert svc.server.buckets.head(store.bucket, key).size == len(data)
    assert store.head(key).crc64 == crc64(data)
    assert b"".join(store.read(key, 1)) == data[1:]
    assert [o.key for o in store.list(key[:5])] == [key]
    copy = store.copy(key, key + ".copy")
    assert copy.key == key + ".copy" and copy.size == len(data)
    store.delete(key)
    assert [o.key for o in store.list()] == [key + ".copy"]


def test_https_scheme_through_a_plain_http_endpoint(svc: CosService, bucket: str) -> None:
    store = CosStore.from_settings(
        bucket, secret_id=ACCESS_KEY, secret_key=SECRET_KEY, region=svc.region, endpoint=svc.endpoint, label=LABEL
    )
    store.put_object("k", b"x", metadata={})
    assert store.head("k").size == 1


def test_bad_settings_are_reported_without_the_secret() -> None:
    with pytest.raises(StoreError, match="conn_x") as exc:
        CosStore.from_settings(
            "b-1", secret_id="id", secret_key="s3cr3t", region="ap-guangzhou", endpoint="nohost", label="conn_x"
        )
    assert "s3cr3t" not in str(exc.value)


def test_bad_keys_are_refused(store: CosStore) -> None:
    for key in ("", "/leading-slash"):
        with pytest.raises(InvalidKeyError):
            store.head(key)


def test_zero_byte_object(store: CosStore) -> None:
    result = store.write("empty", [])
    info = store.head("empty")
    assert (result.size, info.size, info.crc64, result.parts) == (0, 0, 0, 0)
    assert b"".join(store.read("empty")) == b""
    assert [(o.key, o.size) for o in store.list()] == [("empty", 0)]


@pytest.mark.parametrize(("delta", "parts"), [(-1, 0), (0, 1), (1, 2)], ids=["below", "at", "above"])
def test_sizes_around_the_multipart_threshold(svc: CosService, store: CosStore, delta: int, parts: int) -> None:
    data = os.urandom(SMALL.multipart_threshold + delta)
    chunks = [data[i : i + 700_000] for i in range(0, len(data), 700_000)]
    result = store.write("obj.bin", chunks, metadata={"k": "v"})
    info = store.head("obj.bin")
    check_integrity(store, "obj.bin", result, info)
    assert (result.parts, _ops(svc, "UploadPart")) == (parts, parts)
    assert _ops(svc, "PutObject") == (0 if parts else 1)
    assert info.crc64 == crc64(data) and info.metadata == {"k": "v"}
    assert b"".join(store.read("obj.bin", chunk_size=MiB)) == data
    assert list(store.list_multipart_uploads()) == []


def test_list_2500_keys_lazily_page_by_page(svc: CosService, store: CosStore) -> None:
    keys = [f"part-{i:05d}.csv" for i in range(2_500)]
    for key in keys:
        svc.server.buckets.put(store.bucket, key, io.BytesIO(b"xy"), 2)
    listing = store.list()
    first = next(listing)
    assert first.key == keys[0] and first.size == 2 and _ops(svc, "ListObjects") == 1
    rest = [o.key for o in listing]
    assert [first.key, *rest] == keys and _ops(svc, "ListObjects") == 3
    assert len(list(store.list("part-01"))) == 1000


def test_wrong_secret_names_the_connection_not_the_secret(svc: CosService, bucket: str) -> None:
    bad = svc.store(bucket, secret="wrong-secret-value-123", label=LABEL)
    for call in (lambda: bad.put_object("k", b"x", metadata={}), lambda: bad.head("k"), lambda: list(bad.list())):
        with pytest.raises(AccessDeniedError) as exc:
            call()
        message = str(exc.value)
        assert LABEL in message and "SecretKey" in message and "signature" in message
        assert "wrong-secret-value-123" not in message and SECRET_KEY not in message


def test_missing_bucket_names_bucket_and_connection(svc: CosService) -> None:
    ghost = svc.store("ghost-1250000000", label=LABEL)
    calls = [
        lambda: ghost.head("k"),
        lambda: ghost.read("k"),
        lambda: list(ghost.list()),
        lambda: ghost.put_object("k", b"x", metadata={}),
        lambda: ghost.create_multipart("k", metadata={}),
    ]
    for call in calls:
        with pytest.raises(BucketNotFoundError) as exc:
            call()
        assert "ghost-1250000000" in str(exc.value) and LABEL in str(exc.value)


def test_transient_errors(svc: CosService, store: CosStore) -> None:
    store.put_object("k", b"0123456789" * 1000, metadata={})
    svc.faults.add("status", operation="HeadObject")
    with pytest.raises(TransientStoreError):
        store.head("k")
    svc.faults.clear()
    svc.faults.add("truncate", operation="GetObject", times=1)
    with pytest.raises(TransientStoreError):
        b"".join(store.read("k"))
    assert b"".join(store.read("k")) == b"0123456789" * 1000


def test_failing_upload_part_leaves_nothing_behind(svc: CosService, store: CosStore) -> None:
    svc.faults.add("status", operation="UploadPart", status=503, code="SlowDown")
    data = os.urandom(11 * MiB)
    with pytest.raises(TransientStoreError):
        store.write("doomed.bin", [data])
    assert _ops(svc, "AbortMultipartUpload") == 1
    with pytest.raises(ObjectNotFoundError):
        store.head("doomed.bin")
    assert list(store.list_multipart_uploads()) == []
    assert svc.server.buckets.list_uploads(store.bucket) == []


def test_resume_resends_only_missing_parts(svc: CosService, store: CosStore) -> None:
    data = os.urandom(12 * MiB)  # three parts of 5, 5 and 2 MiB

    def broken_source() -> Iterator[bytes]:
        yield data[: 10 * MiB]
        raise ConnectionError("source went away after two parts")

    with pytest.raises(ConnectionError):
        store.write("resumed.bin", broken_source(), resume=True)
    stored = len(svc.server.buckets.list_uploads(store.bucket)[0].parts)
    assert 1 <= stored <= 2
    _settle(svc)
    svc.clear_log()
    result = store.write("resumed.bin", [data], resume=True)
    assert (result.parts, result.parts_reused) == (3, stored)
    assert _ops(svc, "UploadPart") == 3 - stored
    assert _ops(svc, "InitiateMultipartUpload") == 0
    assert store.head("resumed.bin").crc64 == crc64(data)
    assert list(store.list_multipart_uploads()) == []


def test_multipart_primitives(store: CosStore) -> None:
    upload_id = store.create_multipart("m/p q+r", metadata={"a": "1"}, content_type="text/plain")
    assert [(u.key, u.upload_id) for u in store.list_multipart_uploads("m/")] == [("m/p q+r", upload_id)]
    sizes = {1: MiB, 2: 10}  # COS: every part but the last is at least 1 MB
    etags = [store.upload_part("m/p q+r", upload_id, n, bytes([n]) * size) for n, size in sizes.items()]
    parts = store.list_parts("m/p q+r", upload_id)
    assert [(p.number, p.size, p.etag) for p in parts] == [(1, MiB, etags[0]), (2, 10, etags[1])]
    etag = store.complete_multipart("m/p q+r", upload_id, parts)
    assert etag.endswith("-2") and store.head("m/p q+r").metadata == {"a": "1"}
    other = store.create_multipart("m/x", metadata={})
    store.abort_multipart("m/x", other)
    store.abort_multipart("m/x", other)  # already gone: nothing to do
    assert list(store.list_multipart_uploads()) == []


# ---- the Airflow hook ----------------------------------------------------------------------------------
def test_hook_from_environment_connection(svc: CosService, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_multicloud.hooks.cos import CosHook

    monkeypatch.setenv("AIRFLOW_CONN_COS_TEST", json.dumps(svc.connection("cos_test")))
    store = CosHook("cos_test").get_store(bucket, transfer=SMALL)
    assert store.label == "cos_test" and store.transfer == SMALL
    store.write("via-hook.txt", [b"hello"])
    assert store.head("via-hook.txt").crc64 == crc64(b"hello")
    assert CosHook("cos_test").get_conn().head_bucket(Bucket=bucket) is not None


@pytest.mark.parametrize(
    ("change", "missing"),
    [({"password": None}, "SecretKey"), ({"login": ""}, "SecretId"), ({"extra": {}}, "region")],
)
def test_hook_names_connection_and_missing_field(
    svc: CosService, monkeypatch: pytest.MonkeyPatch, change: dict[str, object], missing: str
) -> None:
    from airflow_multicloud.hooks.cos import CosConnectionError, CosHook

    conn = {**svc.connection("cos_broken"), **change}
    monkeypatch.setenv("AIRFLOW_CONN_COS_BROKEN", json.dumps(conn))
    with pytest.raises(CosConnectionError, match=f"'cos_broken'.*{missing}"):
        CosHook("cos_broken").get_store("b-1250000000")


def test_connection_type_validates_against_airflow_schemas() -> None:
    import importlib.resources

    import jsonschema

    from airflow_multicloud.hooks.cos import CONNECTION_TYPE, CosHook

    for name in ("provider_info.schema.json", "provider.yaml.schema.json"):
        schema = json.loads(importlib.resources.files("airflow").joinpath(name).read_text())
        jsonschema.validate([CONNECTION_TYPE], schema["properties"]["connection-types"])
    assert CONNECTION_TYPE["connection-type"] == CosHook.conn_type
    assert CONNECTION_TYPE["hook-class-name"] == f"{CosHook.__module__}.{CosHook.__qualname__}"
    assert CONNECTION_TYPE["conn-fields"]["token"]["schema"]["format"] == "password"
    try:
        from airflow_multicloud.provider import COS_CONNECTION
    except ImportError:
        return
    assert COS_CONNECTION == CONNECTION_TYPE
