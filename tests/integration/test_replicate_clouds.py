"""Replication through the real SDKs against the local S3 (moto), COS and OSS servers."""

from __future__ import annotations

import os
from typing import Any

import pytest

from airflow_multicloud.replication.copy import CopyOptions
from airflow_multicloud.replication.engine import ReplicationError, ReplicationOptions, replicate
from airflow_multicloud.replication.model import Location
from airflow_multicloud.stores.base import MiB, TransferConfig

SMALL = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB, max_concurrency=2)
FAST_RETRY = CopyOptions(object_retries=2, retry_backoff=0.01)


def opts(**kw: Any) -> ReplicationOptions:
    kw.setdefault("copy", FAST_RETRY)
    return ReplicationOptions(progress_interval=0, **kw)


def dataset() -> dict[str, bytes]:
    return {
        "day=1/a.csv": b"id,name\n1,alpha\n2,beta\n",
        "day=1/odd key + %#?=.json": b'{"x": 1}\n',
        "day=1/\u00fcnicode/\u6570\u636e.bin": os.urandom(1000),
        "day=1/empty": b"",
        "day=1/big.bin": os.urandom(11 * MiB + 7),
    }


def fresh(services: dict[str, Any], name: str, files: dict[str, bytes] | None = None, prefix: str = "ds/") -> Location:
    svc = services[name]
    store = svc.store(svc.create_bucket(), transfer=SMALL)
    for rel, data in (files or {}).items():
        store.write(prefix + rel, [data])
    return Location(store, prefix)


def content(loc: Location) -> dict[str, bytes]:
    out = {}
    for info in loc.store.list(loc.prefix):
        rel = info.key[len(loc.prefix) :]
        if not rel.startswith("_multicloud/"):
            out[rel] = b"".join(loc.store.read(info.key))
    return out


DIRECTIONS = [
    ("s3", ["cos"]),
    ("s3", ["oss"]),
    ("cos", ["s3"]),
    ("cos", ["oss"]),
    ("oss", ["s3"]),
    ("oss", ["cos"]),
    ("file", ["s3"]),
    ("s3", ["file"]),
    ("s3", ["cos", "oss"]),
    ("oss", ["file", "s3"]),
]


@pytest.mark.parametrize(("src", "dsts"), DIRECTIONS, ids=[f"{s}-to-{'+'.join(d)}" for s, d in DIRECTIONS])
def test_every_direction_copies_and_verifies(clean_services: dict[str, Any], src: str, dsts: list[str]) -> None:
    files = dataset()
    source = fresh(clean_services, src, files)
    dests = [fresh(clean_services, d) for d in dsts]
    summary = replicate(source, dests, opts())
    assert (summary.copied, summary.failed) == (len(files) * len(dests), 0)
    for dest in dests:
        assert content(dest) == files
        for rel, data in files.items():
            head = dest.store.head(dest.key(rel))
            assert head.size == len(data)
            assert head.metadata.get("multicloud-source-size") == str(len(data))


def test_rerun_reads_no_object_data_and_recopies_only_the_changed_object(clean_services: dict[str, Any]) -> None:
    files = dataset()
    source = fresh(clean_services, "s3", files)
    dests = [fresh(clean_services, "cos"), fresh(clean_services, "oss")]
    replicate(source, dests, opts())
    for svc in clean_services.values():
        svc.clear_log()
    again = replicate(source, dests, opts())
    assert (again.copied, again.skipped) == (0, 2 * len(files))
    data_gets = [
        r
        for name in ("s3", "cos", "oss")
        for r in clean_services[name].requests
        if r.operation == "GetObject" and "/_multicloud/" not in "/" + r.key
    ]
    assert data_gets == [], "a no-op rerun must not read object data"
    assert not [r for r in clean_services["s3"].requests if r.method == "HEAD"], "no HEAD per object either"
    # per destination: one listing of its manifest folder (read first, so its records stream in key order next
    # to the listing) and one of its objects; nothing is listed again to consolidate or prune
    for name in ("cos", "oss"):
        lists = [r for r in clean_services[name].requests if r.operation.startswith("ListObjects")]
        assert len(lists) == 2, [(r.operation, r.query) for r in lists]

    source.store.write(source.key("day=1/a.csv"), [b"id,name\n1,changed\n"])
    third = replicate(source, dests, opts())
    assert (third.copied, third.skipped) == (2, 2 * len(files) - 2)
    assert content(dests[0])["day=1/a.csv"] == b"id,name\n1,changed\n"


@pytest.mark.parametrize("big", [False, True], ids=["single-put", "multipart"])
def test_flipped_byte_in_source_read_is_retried(clean_services: dict[str, Any], big: bool) -> None:
    rel = "day=1/big.bin" if big else "day=1/a.csv"
    files = {rel: dataset()[rel]}
    source = fresh(clean_services, "cos", files)
    dest = fresh(clean_services, "oss")
    clean_services["cos"].faults.add("flip", operation="GetObject", times=1)
    summary = replicate(source, [dest], opts())
    assert summary.copied == 1 and summary.failed == 0
    assert content(dest) == files


def test_source_that_stays_corrupt_fails_naming_the_key(clean_services: dict[str, Any]) -> None:
    files = dataset()
    source = fresh(clean_services, "oss", files)
    dest = fresh(clean_services, "cos")
    clean_services["oss"].faults.add("flip", operation="GetObject", key="*big.bin")
    with pytest.raises(ReplicationError, match=r"big\.bin") as err:
        replicate(source, [dest], opts())
    assert err.value.summary.failed == 1 and err.value.summary.copied == len(files) - 1
    assert "big.bin" not in {k.rsplit("/", 1)[-1] for k in content(dest)}, "a corrupt copy must not be completed"
    assert not list(dest.store.list_multipart_uploads(dest.prefix)), "no orphaned upload"


def test_flipped_byte_on_the_way_to_the_destination_is_caught(clean_services: dict[str, Any]) -> None:
    files = dataset()
    source = fresh(clean_services, "s3", files)
    dest = fresh(clean_services, "cos")
    clean_services["cos"].faults.add("flip_request", times=2)
    summary = replicate(source, [dest], opts())
    assert summary.failed == 0 and content(dest) == files
    assert clean_services["cos"].faults.rules[0].fired == 2


def test_destination_that_keeps_corrupting_fails(clean_services: dict[str, Any]) -> None:
    files = {"day=1/a.csv": dataset()["day=1/a.csv"]}
    source = fresh(clean_services, "s3", files)
    dest = fresh(clean_services, "oss")
    clean_services["oss"].faults.add("flip_request", key="ds/day=1/*")
    with pytest.raises(ReplicationError, match=r"a\.csv"):
        replicate(source, [dest], opts())
    assert content(dest) == {}


def test_mirror_never_deletes_when_a_copy_failed(clean_services: dict[str, Any]) -> None:
    files = dataset()
    source = fresh(clean_services, "s3", files)
    dest = fresh(clean_services, "cos", {"stale.txt": b"old"})
    clean_services["s3"].faults.add("status", status=500, code="InternalError", operation="GetObject", key="*a.csv")
    with pytest.raises(ReplicationError) as err:
        replicate(source, [dest], opts(mode="mirror", max_delete=10))
    assert err.value.summary.deleted == 0
    assert "stale.txt" in content(dest)
    clean_services["s3"].faults.clear()
    summary = replicate(source, [dest], opts(mode="mirror", max_delete=10))
    assert summary.deleted == 1 and "stale.txt" not in content(dest)


def test_same_service_uses_server_side_copy(clean_services: dict[str, Any]) -> None:
    files = dataset()
    source = fresh(clean_services, "oss", files)
    dest = fresh(clean_services, "oss")
    clean_services["oss"].clear_log()
    summary = replicate(source, [dest], opts())
    gets = [
        r
        for r in clean_services["oss"].requests
        if r.operation == "GetObject" and r.body_bytes_out and "/_multicloud/" not in "/" + r.key  # manifests
    ]
    assert gets == [], "server-side copy must not stream the data through us"
    copies = [r for r in clean_services["oss"].requests if r.operation in ("CopyObject", "UploadPartCopy")]
    assert len(copies) >= len(files)
    assert summary.copied == len(files) and content(dest) == files


def test_cos_copy_over_the_single_request_limit_is_copied_in_parts_server_side(
    clean_services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """COS refuses PUT Object - Copy of a source over 5 GB (400 EntityTooLarge): the store copies it with multipart
    Upload Part - Copy instead, still server-side and proven by both sides' CRC64. 5 GB of test data is impractical,
    so the local server's limit is lowered to 1 MiB (``CosLimits``): big.bin (11 MiB) goes over it, the rest not."""
    from airflow_multicloud.replication.manifest import read_previous
    from multicloud_testbed.cos_limits import CosLimits

    cos = clean_services["cos"]
    files = dataset()
    source = fresh(clean_services, "cos", files)
    dest = fresh(clean_services, "cos")
    monkeypatch.setattr(cos.server, "limits", CosLimits(max_copy_source=MiB))
    cos.clear_log()
    summary = replicate(source, [dest], opts())
    assert (summary.copied, summary.failed) == (len(files), 0)
    assert content(dest) == files
    big = dest.prefix + "day=1/big.bin"
    refused = [r for r in cos.requests if r.operation == "CopyObject" and r.status == 400]
    assert [r.key for r in refused] == [big]
    part_copies = [r for r in cos.requests if r.operation == "UploadPartCopy" and r.key == big]
    assert len(part_copies) == 3 and all(r.status == 200 for r in part_copies)  # 5 + 5 + 1 MiB parts
    read = [r for r in cos.requests if r.operation == "GetObject" and r.bucket == source.store.bucket]
    assert read == [], "the refused copy must stay server-side, not stream through us"
    assert read_previous(dest)["day=1/big.bin"]["verified_by"][1:] == ["server-side-copy", "crc64"]
