"""Synthetic buckets of the local COS and OSS, through the real SDKs: generated listings page like the real
APIs, HEAD and GET agree with the listed ETag and CRC64, writes and deletes land on the disk overlay, and
list_parallel returns what one listing returns."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from airflow_multicloud.checksums import crc64
from airflow_multicloud.errors import ObjectNotFoundError
from airflow_multicloud.replication.model import META_CRC64, META_SOURCE_ETAG, META_SOURCE_SIZE
from airflow_multicloud.stores.listing import list_parallel
from multicloud_testbed.synthetic import SyntheticSpec

SPEC = SyntheticSpec(count=2500, size=48, seed=7, prefix="data/", suffix=".bin")
LIST_OPS = {"cos": "ListObjects", "oss": "ListObjectsV2"}


@pytest.fixture(params=["cos", "oss"])
def svc(request: pytest.FixtureRequest, clean_services: dict[str, Any]) -> Any:
    return clean_services[request.param]


def listing_requests(svc: Any, bucket: str) -> int:
    return sum(1 for r in svc.requests if r.bucket == bucket and r.operation == LIST_OPS[svc.name])


def test_generated_listing_pages_in_key_order(svc: Any) -> None:
    bucket = svc.synthetic_bucket(SPEC)
    store = svc.store(bucket)
    svc.clear_log()
    keys = [o.key for o in store.list("data/")]
    assert len(keys) == SPEC.count and len(set(keys)) == SPEC.count
    assert keys == sorted(keys, key=lambda k: k.encode())
    assert keys[0] == "data/0000.bin" and keys[-1] == "data/2499.bin"
    assert listing_requests(svc, bucket) == 3  # 1,000 per page, as the real APIs
    assert [o.key for o in store.list("data/12")] == [f"data/12{i:02d}.bin" for i in range(100)]
    assert list(store.list("dat/")) == [] and list(store.list("data/9")) == []


def test_head_and_get_agree_with_the_listing(svc: Any) -> None:
    store = svc.store(svc.synthetic_bucket(SPEC))
    listed = {o.key: o for o in store.list("data/")}
    for key in ("data/0000.bin", "data/1234.bin", "data/2499.bin"):
        body = b"".join(store.read(key))
        assert len(body) == SPEC.size
        head = store.head(key)
        assert head.etag is not None and head.etag.lower() == hashlib.md5(body).hexdigest()
        assert head.crc64 == crc64(body)
        assert listed[key].etag == head.etag and listed[key].size == SPEC.size
    assert b"".join(store.read("data/0001.bin")) != b"".join(store.read("data/0002.bin"))
    with pytest.raises(ObjectNotFoundError):
        store.head("data/2500.bin")


def test_a_replica_holds_the_same_bytes_and_the_copy_engines_metadata(svc: Any) -> None:
    source = svc.store(svc.synthetic_bucket(SPEC))
    replica_spec = SyntheticSpec(count=SPEC.count, size=SPEC.size, seed=SPEC.seed, prefix="copy/", suffix=".bin")
    replica = svc.store(svc.synthetic_bucket(SyntheticSpec(**{**vars(replica_spec), "replica_of": True})))
    src, dst = source.head("data/0042.bin"), replica.head("copy/0042.bin")
    assert b"".join(source.read("data/0042.bin")) == b"".join(replica.read("copy/0042.bin"))
    assert dst.metadata[META_SOURCE_ETAG] == src.etag.lower()  # type: ignore[union-attr]
    assert dst.metadata[META_SOURCE_SIZE] == str(SPEC.size)
    assert dst.metadata[META_CRC64] == f"{src.crc64:016x}"


def test_writes_and_deletes_go_to_the_overlay(svc: Any) -> None:
    store = svc.store(svc.synthetic_bucket(SPEC))
    store.put_object("data/0005.bin", b"written", metadata={})
    store.put_object("data/_multicloud/manifest.jsonl", b"{}\n", metadata={})
    store.put_object("data/1000.bin.extra", b"between", metadata={})
    store.delete("data/0006.bin")
    keys = [o.key for o in store.list("data/")]
    assert len(keys) == SPEC.count + 1  # two new keys, one generated key gone
    assert keys == sorted(keys)
    assert "data/0006.bin" not in keys and keys.index("data/1000.bin.extra") == keys.index("data/1000.bin") + 1
    assert b"".join(store.read("data/0005.bin")) == b"written"
    assert {o.key: o.size for o in store.list("data/000")}["data/0005.bin"] == len(b"written")
    with pytest.raises(ObjectNotFoundError):
        store.head("data/0006.bin")


def test_list_parallel_matches_one_listing_and_lists_ranges_concurrently(svc: Any) -> None:
    bucket = svc.synthetic_bucket(SPEC)
    store = svc.store(bucket)
    single = [(o.key, o.etag) for o in store.list("data/")]
    svc.clear_log()
    svc.faults.add("latency", latency=0.05, operation=LIST_OPS[svc.name])
    parallel = [(o.key, o.etag) for o in list_parallel(store, "data/", workers=4)]
    assert parallel == single
    # the ranges were listed from their own markers, not reached by paging from the start
    starts = [r.query.get("marker") or r.query.get("start-after") for r in svc.requests if r.bucket == bucket]
    assert {"data/1", "data/2"} <= set(starts)


def test_delimiter_and_markers_roll_generated_keys_up(svc: Any) -> None:
    bucket = svc.synthetic_bucket(SPEC)
    svc.store(bucket).put_object("top.txt", b"top", metadata={})
    buckets = svc.server.buckets
    objs, prefixes, truncated, last = buckets.list(bucket, "", "", "/", 1000)
    assert ([o.key for o in objs], prefixes, truncated, last) == (["top.txt"], ["data/"], False, "top.txt")
    objs, prefixes, truncated, last = buckets.list(bucket, "", "", "/", 1)
    assert (objs, prefixes, truncated, last) == ([], ["data/"], True, "data/")
    objs, _, truncated, last = buckets.list(bucket, "data/", "data/2497.bin", "", 1000)
    assert [o.key for o in objs] == ["data/2498.bin", "data/2499.bin"] and not truncated


def test_a_replica_bucket_is_taken_as_already_copied_and_a_missing_object_is_copied(
    clean_services: dict[str, Any],
) -> None:
    """The engine itself decides: without a manifest it HEADs each replica object and finds its own metadata."""
    from airflow_multicloud.replication.engine import ReplicationOptions, replicate
    from airflow_multicloud.replication.model import Location

    cos, oss = clean_services["cos"], clean_services["oss"]
    spec = SyntheticSpec(count=120, size=40, seed=3, prefix="ds/", suffix=".bin")
    source = Location(cos.store(cos.synthetic_bucket(spec)), "ds/")
    replicas = [
        Location(svc.store(svc.synthetic_bucket(SyntheticSpec(**{**vars(spec), "replica_of": True}))), "ds/")
        for svc in (cos, oss)
    ]
    replicas[1].store.delete("ds/007.bin")
    summary = replicate(source, replicas, ReplicationOptions(progress_interval=0))
    assert (summary.copied, summary.skipped, summary.failed) == (1, 2 * spec.count - 1, 0)
    assert b"".join(replicas[1].store.read("ds/007.bin")) == b"".join(source.store.read("ds/007.bin"))


def test_list_parallel_on_s3_starts_each_range_at_its_marker(s3_service: Any) -> None:
    """moto has no synthetic mode: a few real keys, enough to check S3's StartAfter is used, not a full scan."""
    store = s3_service.store(s3_service.create_bucket())
    keys = [f"p/{c}{i}" for c in "05az~" for i in range(3)] + ["p/ünï", "q/0"]
    for key in keys:
        store.put_object(key, key.encode(), metadata={})
    s3_service.clear_log()
    assert [o.key for o in list_parallel(store, "p/", ["p/1", "p/b"], workers=3)] == [o.key for o in store.list("p/")]
    starts = sorted(r.query.get("start-after", "") for r in s3_service.requests if r.operation == "ListObjectsV2")
    assert {"p/1", "p/b"} <= set(starts)
