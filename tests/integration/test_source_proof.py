"""Every source byte proven: one flipped byte in any source read or destination write never ends in a replica.

Each run either ends with every replica byte-identical to the source (read back and compared here) or fails naming
the object; the manifest says per object how its source bytes were proven.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_multicloud.replication.copy import CopyOptions
from airflow_multicloud.replication.engine import ReplicationError, ReplicationOptions, replicate
from airflow_multicloud.replication.manifest import read_previous
from airflow_multicloud.replication.model import Location, SourceProof
from airflow_multicloud.replication.stream import BandwidthLimiter
from airflow_multicloud.stores.base import MiB

FAST_RETRY = CopyOptions(object_retries=2, retry_backoff=0.01)
PREFIX = "ds/"


def opts(**kw: Any) -> ReplicationOptions:
    kw.setdefault("copy", FAST_RETRY)
    return ReplicationOptions(progress_interval=0, **kw)


def location(services: dict[str, Any], name: str) -> Location:
    svc = services[name]
    return Location(svc.store(svc.create_bucket()), PREFIX)


def content(loc: Location) -> dict[str, bytes]:
    return {
        info.key[len(loc.prefix) :]: b"".join(loc.store.read(info.key))
        for info in loc.store.list(loc.prefix)
        if "_multicloud/" not in info.key
    }


def manifest(loc: Location) -> dict[str, dict[str, Any]]:
    """The current verified record of each key, as the replica's manifests say."""
    return read_previous(loc)


def assert_identical(source: Location, replicas: list[Location]) -> dict[str, bytes]:
    want = content(source)
    assert want
    for replica in replicas:
        got = content(replica)
        assert got.keys() == want.keys(), replica.uri
        for rel, data in want.items():
            assert got[rel] == data, f"{replica.uri}{rel} differs from the source"
    return want


def _s3_put(services: dict[str, Any], key: str, data: bytes, **extra: Any) -> Location:
    loc = location(services, "s3")
    loc.store.client.put_object(Bucket=loc.store.bucket, Key=PREFIX + key, Body=data, **extra)  # type: ignore[attr-defined]
    return loc


def _s3_upload_file(services: dict[str, Any], key: str, data: bytes, tmp: Path, part: int) -> Location:
    """As `aws s3 cp` would: boto3's managed upload, in parts of ``part`` bytes (ours are 8 MiB)."""
    from boto3.s3.transfer import TransferConfig as BotoTransfer

    loc = location(services, "s3")
    path = tmp / "upload.bin"
    path.write_bytes(data)
    config = BotoTransfer(multipart_threshold=part, multipart_chunksize=part)
    loc.store.client.upload_file(str(path), loc.store.bucket, PREFIX + key, Config=config)  # type: ignore[attr-defined]
    return loc


def _s3_full_object_crc32(services: dict[str, Any], key: str, data: bytes, part: int) -> Location:
    """A multipart upload that also gave S3 the whole object's CRC32 (ChecksumType FULL_OBJECT)."""
    import zlib

    loc = location(services, "s3")
    client, bucket = loc.store.client, loc.store.bucket  # type: ignore[attr-defined]
    upload = client.create_multipart_upload(
        Bucket=bucket, Key=PREFIX + key, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    parts = []
    for number, offset in enumerate(range(0, len(data), part), start=1):
        resp = client.upload_part(
            Bucket=bucket,
            Key=PREFIX + key,
            UploadId=upload,
            PartNumber=number,
            Body=data[offset : offset + part],
            ChecksumAlgorithm="CRC32",
        )
        parts.append({"PartNumber": number, "ETag": resp["ETag"], "ChecksumCRC32": resp["ChecksumCRC32"]})
    client.complete_multipart_upload(
        Bucket=bucket,
        Key=PREFIX + key,
        UploadId=upload,
        MultipartUpload={"Parts": parts},
        ChecksumType="FULL_OBJECT",
        ChecksumCRC32=base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode(),
    )
    return loc


def _ours(services: dict[str, Any], name: str, key: str, data: bytes) -> Location:
    loc = location(services, name)
    loc.store.write(PREFIX + key, [data])
    return loc


# source kind -> (make the source, the proof its manifest records, the destinations)
SOURCES = {
    "s3-single-small": (lambda s, t, d: _s3_put(s, "k.bin", d[: 3 * MiB]), SourceProof.MD5_ETAG),
    "s3-single-large": (lambda s, t, d: _s3_put(s, "k.bin", d[: 20 * MiB]), SourceProof.MD5_ETAG),
    "s3-multipart-6MiB": (lambda s, t, d: _s3_upload_file(s, "k.bin", d, t, 6 * MiB), SourceProof.MULTIPART_ETAG),
    "s3-multipart-5MiB-small": (
        lambda s, t, d: _s3_upload_file(s, "k.bin", d[: 12 * MiB], t, 5 * MiB),
        SourceProof.MULTIPART_ETAG,
    ),
    "s3-crc32": (
        lambda s, t, d: _s3_put(s, "k.bin", d[: 20 * MiB], ChecksumAlgorithm="CRC32"),
        SourceProof.S3_CHECKSUM,
    ),
    "s3-multipart-full-crc32": (
        lambda s, t, d: _s3_full_object_crc32(s, "k.bin", d, 7 * MiB),
        SourceProof.S3_CHECKSUM,
    ),
    # SSE-KMS: the ETag is no MD5 (moto's is, AWS's is not: the HEAD's encryption decides) and there is no checksum
    "s3-sse-kms": (lambda s, t, d: _s3_put(s, "k.bin", d[: 20 * MiB], ServerSideEncryption="aws:kms"), None),
    "cos": (lambda s, t, d: _ours(s, "cos", "k.bin", d), SourceProof.CRC64),
    "oss": (lambda s, t, d: _ours(s, "oss", "k.bin", d[: 20 * MiB]), SourceProof.CRC64),
}
DESTINATIONS = {"s3": ["cos", "oss", "file"], "cos": ["s3", "oss", "file"], "oss": ["s3", "cos", "file"]}


@pytest.mark.parametrize("kind", list(SOURCES))
def test_a_byte_flipped_in_a_source_read_never_reaches_a_replica(
    clean_services: dict[str, Any], tmp_path: Path, kind: str
) -> None:
    make, proof = SOURCES[kind]
    source = make(clean_services, tmp_path, os.urandom(40 * MiB))
    name = kind.split("-")[0]
    rule = clean_services[name].faults.add("flip", operation="GetObject", key=PREFIX + "k.bin", times=1)
    dests = [location(clean_services, d) for d in DESTINATIONS[name]]
    summary = replicate(source, dests, opts())
    assert rule.fired == 1 and summary.copied == len(dests)
    assert_identical(source, dests)
    for dest in dests:
        record = manifest(dest)["k.bin"]
        # SSE-KMS large objects are proven by a second read (small ones by the MD5 the listing's ETag matched)
        assert record["source_proof"] == (proof or SourceProof.REREAD)
        assert record["verified_by"][0] == record["source_proof"]


def test_strict_fails_an_object_the_source_cannot_prove_naming_it(clean_services: dict[str, Any]) -> None:
    source = _s3_put(clean_services, "k.bin", os.urandom(20 * MiB), ServerSideEncryption="aws:kms")
    _s3_put_into(source, "proven.bin", b"x" * 1000)
    dest = location(clean_services, "cos")
    strict = CopyOptions(object_retries=2, retry_backoff=0.01, source_verification="strict")
    with pytest.raises(ReplicationError) as info:
        replicate(source, [dest], opts(copy=strict))
    assert info.value.summary.failed == 1 and info.value.summary.copied == 1
    (failed,) = info.value.summary.failed_keys
    assert "ds/k.bin" in failed and "source_verification='strict'" in failed
    assert content(dest) == {"proven.bin": b"x" * 1000}
    with pytest.raises(ValueError, match="source_verification='paranoid' is not supported"):
        CopyOptions(source_verification="paranoid")


def _s3_put_into(loc: Location, key: str, data: bytes) -> None:
    loc.store.client.put_object(Bucket=loc.store.bucket, Key=PREFIX + key, Body=data)  # type: ignore[attr-defined]


def test_a_multipart_layout_with_unequal_parts_is_read_part_by_part(
    clean_services: dict[str, Any], tmp_path: Path
) -> None:
    """Parts of 5, 7, 5 and 3 MiB: the first and last part sizes do not fit equal parts, so each part is asked."""
    source = location(clean_services, "s3")
    client, bucket, key = source.store.client, source.store.bucket, PREFIX + "k.bin"  # type: ignore[attr-defined]
    data = os.urandom(20 * MiB)
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts, offset = [], 0
    for number, size in enumerate([5 * MiB, 7 * MiB, 5 * MiB, 3 * MiB], start=1):
        etag = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=data[offset : offset + size]
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
        offset += size
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
    rule = clean_services["s3"].faults.add("flip", operation="GetObject", times=1)
    dest = location(clean_services, "oss")
    replicate(source, [dest], opts())
    assert rule.fired == 1
    assert_identical(source, [dest])
    assert manifest(dest)["k.bin"]["source_proof"] == SourceProof.MULTIPART_ETAG


@pytest.mark.parametrize("name", ["s3", "cos", "oss"])
def test_a_byte_flipped_in_a_destination_write_is_retried(
    clean_services: dict[str, Any], tmp_path: Path, name: str
) -> None:
    source = location(clean_services, "file")
    source.store.write(PREFIX + "big.bin", [os.urandom(20 * MiB)])
    source.store.write(PREFIX + "small.bin", [os.urandom(MiB)])
    svc = clean_services[name]
    rules = [
        svc.faults.add("flip_request", operation="UploadPart", times=1),
        svc.faults.add("flip_request", operation="PutObject", key=PREFIX + "small.bin", times=1),
    ]
    dest = location(clean_services, name)
    replicate(source, [dest], opts())
    assert [r.fired for r in rules] == [1, 1]
    assert_identical(source, [dest])
    records = manifest(dest).values()
    assert {r["source_proof"] for r in records} == {SourceProof.CRC64}  # the local sidecar's
    # COS and OSS are asked for their CRC64 after the write anyway: that HEAD gives the replica's time, free
    assert all(bool(r["dest_last_modified"]) == (name != "s3") for r in records)


class _RewriteOnce(BandwidthLimiter):
    """Rewrites the source file once, when the copy has read ``after`` bytes of it (the limiter sees every chunk
    read, which makes it the one deterministic moment to change the file under the copy)."""

    def __init__(self, path: Path, after: int) -> None:
        super().__init__(1e12)
        self.path, self.after, self.seen, self.done = path, after, 0, False

    def take(self, n: int) -> None:
        self.seen += n
        if not self.done and self.seen > self.after:
            self.done = True
            with open(self.path, "r+b") as f:  # as an editor or a log writer would: in place
                f.write(b"NEW")
                f.seek(190 * MiB // 4)
                f.write(b"NEW")


@pytest.mark.parametrize("dest_name", ["s3", "file"])
def test_a_local_file_rewritten_during_its_copy_gives_one_whole_version(
    clean_services: dict[str, Any], dest_name: str
) -> None:
    source = location(clean_services, "file")
    path = Path(source.store.bucket) / PREFIX / "data.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(os.urandom(50 * MiB))  # written by someone else: no sidecar, nothing but the file
    limiter = _RewriteOnce(path, after=16 * MiB)
    dest = location(clean_services, dest_name)
    copy = CopyOptions(object_retries=2, retry_backoff=0.01, limiter=limiter)
    replicate(source, [dest], opts(copy=copy))
    assert limiter.done
    assert content(dest)["data.bin"] == path.read_bytes()  # the new version, whole
    assert manifest(dest)["data.bin"]["source_proof"] == SourceProof.LOCAL_STABLE


def test_server_side_copies_are_proven_by_both_sides_checksums(clean_services: dict[str, Any], tmp_path: Path) -> None:
    data = os.urandom(14 * MiB)
    for name in ("cos", "oss", "file"):
        source = _ours(clean_services, name, "k.bin", data)
        dest = location(clean_services, name)
        replicate(source, [dest], opts())
        record = manifest(dest)["k.bin"]
        assert record["verified_by"] == [SourceProof.CRC64, "server-side-copy", "crc64"]
        assert record["dest_last_modified"]
        assert_identical(source, [dest])
    s3 = clean_services["s3"]
    source = _s3_upload_file(clean_services, "k.bin", data, tmp_path, 5 * MiB)
    dest = location(clean_services, "s3")
    s3.clear_log()
    replicate(source, [dest], opts())
    # copied part by part in the source's own layout, the replica keeps the source's multipart ETag: the proof
    assert manifest(dest)["k.bin"]["verified_by"] == [SourceProof.MULTIPART_ETAG, "server-side-copy", "etag"]
    assert {r.operation for r in s3.requests} >= {"UploadPartCopy"} and "GetObject" not in {
        r.operation for r in s3.requests if r.bucket == source.store.bucket
    }
    assert_identical(source, [dest])


def test_a_refused_server_side_copy_is_streamed_instead(clean_services: dict[str, Any]) -> None:
    for name, operation in (("cos", "CopyObject"), ("s3", "CopyObject"), ("oss", "CopyObject")):
        svc = clean_services[name]
        source = _ours(clean_services, name, "k.bin", os.urandom(2 * MiB))
        dest = location(clean_services, name)
        rule = svc.faults.add("status", operation=operation, status=403, code="AccessDenied")
        replicate(source, [dest], opts())
        assert rule.fired == 1
        assert_identical(source, [dest])
        assert "server-side-copy" not in manifest(dest)["k.bin"]["verified_by"]
        svc.faults.clear()


def test_a_server_side_copy_with_nothing_to_compare_is_streamed(clean_services: dict[str, Any]) -> None:
    """An SSE-KMS object has no MD5 ETag and here no checksum: its copy could only be checked by size."""
    source = _s3_put(clean_services, "k.bin", os.urandom(MiB), ServerSideEncryption="aws:kms")
    dest = location(clean_services, "s3")
    replicate(source, [dest], opts())
    assert_identical(source, [dest])
    record = manifest(dest)["k.bin"]
    assert "server-side-copy" not in record["verified_by"]
    assert record["source_proof"] != SourceProof.UNVERIFIED


def test_no_server_side_streams_within_one_service(clean_services: dict[str, Any]) -> None:
    source = _ours(clean_services, "cos", "k.bin", b"abc" * 1000)
    dest = location(clean_services, "cos")
    copy = CopyOptions(object_retries=1, server_side=False)
    replicate(source, [dest], opts(copy=copy))
    assert manifest(dest)["k.bin"]["verified_by"][1:] != ["server-side-copy", "crc64"]
    assert_identical(source, [dest])


def test_a_server_side_copy_whose_checksums_differ_is_streamed(clean_services: dict[str, Any]) -> None:
    """moto (without awscrt) computes a CRC32 and names it CRC64NVME for the copy it makes: the two sides' checksums
    differ, so the server-side copy counts for nothing and the object is streamed, proven by the source's own
    CRC64NVME (asked for as a large object is: a small one is proven by the MD5 its listed ETag matched)."""
    import anycrc

    data = os.urandom(17 * MiB)
    crc = base64.b64encode(anycrc.Model("CRC64-NVME").calc(data).to_bytes(8, "big")).decode()
    source = location(clean_services, "s3")
    client = source.store.client  # type: ignore[attr-defined]

    def add_checksum(params: dict[str, Any], **_: Any) -> None:  # what an SDK with awscrt sends
        params["headers"].update({"x-amz-checksum-crc64nvme": crc, "x-amz-sdk-checksum-algorithm": "CRC64NVME"})

    client.meta.events.register("before-call.s3.PutObject", add_checksum, unique_id="test-crc64nvme")
    client.put_object(Bucket=source.store.bucket, Key=PREFIX + "k.bin", Body=data)
    client.meta.events.unregister("before-call.s3.PutObject", unique_id="test-crc64nvme")
    assert source.store.source_info(PREFIX + "k.bin").checksum == crc
    dest = location(clean_services, "s3")
    replicate(source, [dest], opts())
    record = manifest(dest)["k.bin"]
    assert record["source_proof"] == SourceProof.S3_CHECKSUM and "server-side-copy" not in record["verified_by"]
    assert_identical(source, [dest])
