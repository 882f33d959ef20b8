"""The local OSS server as oss2 sees it: real SDK calls over HTTP, no mocks."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import oss2
import pytest
import requests
import urllib3

from airflow_multicloud.checksums import crc64
from multicloud_testbed.oss_server import OssService
from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

REGION = "cn-hangzhou"
ODD_KEYS = ["a b/c d.txt", "ünï/cødé/文件.csv", "p+q%r#s?t=u", "ctrl\x01char", "amp&<lt>&gt", "dir//double", "~tilde.x"]


@pytest.fixture(scope="module")
def server() -> Iterator[OssService]:
    with OssService(region=REGION) as svc:
        yield svc


@pytest.fixture(autouse=True)
def _clean(server: OssService) -> Iterator[None]:
    server.faults.clear()
    server.clear_log()
    yield
    server.faults.clear()


def make_bucket(server: OssService, name: str, auth: str = "v4", secret: str = SECRET_KEY) -> oss2.Bucket:
    a = oss2.AuthV4(ACCESS_KEY, secret) if auth == "v4" else oss2.Auth(ACCESS_KEY, secret)
    return oss2.Bucket(a, server.endpoint, name, region=REGION)


@pytest.fixture(params=["v1", "v4"])
def bucket(request: pytest.FixtureRequest, server: OssService) -> oss2.Bucket:
    return make_bucket(server, server.create_bucket(), request.param)


def count(server: OssService, operation: str, status: int | None = None) -> int:
    return sum(1 for r in server.requests if r.operation == operation and status in (None, r.status))


def seed(server: OssService, name: str, keys: list[str]) -> None:
    """Put objects straight into the server's disk buckets: listing tests need many keys, not many PUTs."""
    for key in keys:
        server.server.buckets.put(name, key, io.BytesIO(key.encode()), len(key.encode()))


# ---- signatures and error classes --------------------------------------------------------------------
@pytest.mark.parametrize("auth", ["v1", "v4"])
def test_wrong_secret_is_signature_does_not_match(server: OssService, auth: str) -> None:
    b = make_bucket(server, server.create_bucket(), auth, secret="not-the-secret")
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch) as info:
        b.put_object("k", b"x")
    assert info.value.status == 403
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        b.head_object("k")  # HEAD has no body: the code travels in x-oss-err


@pytest.mark.parametrize("auth", ["v1", "v4"])
def test_unknown_access_key(server: OssService, auth: str) -> None:
    a = oss2.Auth("NOSUCHKEY", SECRET_KEY) if auth == "v1" else oss2.AuthV4("NOSUCHKEY", SECRET_KEY)
    b = oss2.Bucket(a, server.endpoint, server.create_bucket(), region=REGION)
    with pytest.raises(oss2.exceptions.ServerError) as info:
        b.list_objects()
    assert (info.value.status, info.value.code) == (403, "InvalidAccessKeyId")


def test_v4_wrong_region_is_rejected(server: OssService) -> None:
    b = oss2.Bucket(oss2.AuthV4(ACCESS_KEY, SECRET_KEY), server.endpoint, server.create_bucket(), region="us-west-1")
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        b.list_objects()


def test_sts_token_is_signed_and_accepted(server: OssService) -> None:
    auth = oss2.StsAuth(ACCESS_KEY, SECRET_KEY, "sts-token-value", auth_version="v4")
    b = oss2.Bucket(auth, server.endpoint, server.create_bucket(), region=REGION)
    b.put_object("k", b"x")
    assert b.get_object("k").read() == b"x"


def test_error_classes(bucket: oss2.Bucket, server: OssService) -> None:
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.get_object("missing")
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.head_object("missing")
    assert not bucket.object_exists("missing")
    gone = oss2.Bucket(bucket.auth, server.endpoint, "mc-no-such-bucket", region=REGION)
    for call in (lambda: gone.list_objects(), lambda: gone.head_object("k"), lambda: gone.put_object("k", b"1")):
        with pytest.raises(oss2.exceptions.NoSuchBucket):
            call()
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.upload_part("k", "NOSUCHUPLOAD", 1, b"data")
    upload_id = bucket.init_multipart_upload("k").upload_id
    bucket.upload_part("k", upload_id, 1, b"data")
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.complete_multipart_upload("k", upload_id, [oss2.models.PartInfo(1, "0" * 32)])
    assert (info.value.status, info.value.code) == (400, "InvalidPart")
    with pytest.raises(oss2.exceptions.InvalidDigest):
        bucket.put_object("bad-md5", b"payload", headers={"Content-MD5": oss2.utils.content_md5(b"other")})
    assert not bucket.object_exists("bad-md5")
    with pytest.raises(oss2.exceptions.InvalidObjectName):
        bucket.put_object("k" * 1024, b"1")


# ---- objects -----------------------------------------------------------------------------------------
def test_put_get_head_range_and_crc(bucket: oss2.Bucket) -> None:
    data = os.urandom(300_000)
    put = bucket.put_object("d/obj.bin", data, headers={"x-oss-meta-Origin": "test"})
    assert put.crc == crc64(data)
    assert put.etag == put.etag.upper()
    head = bucket.head_object("d/obj.bin")
    assert (head.content_length, head.server_crc, head.object_type) == (len(data), crc64(data), "Normal")
    assert head.headers["x-oss-meta-origin"] == "test"
    assert bucket.get_object_meta("d/obj.bin").content_length == len(data)
    part = bucket.get_object("d/obj.bin", byte_range=(100, 199))
    assert (part.status, part.read()) == (206, data[100:200])
    assert bucket.get_object("d/obj.bin", byte_range=(len(data) - 10, None)).read() == data[-10:]
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        bucket.get_object("d/obj.bin", headers={"If-Match": '"00"'})
    bucket.delete_object("d/obj.bin")
    bucket.delete_object("d/obj.bin")  # deleting an absent object is fine
    assert not bucket.object_exists("d/obj.bin")


def test_multipart_crc_list_parts_and_uploads(bucket: oss2.Bucket) -> None:
    parts_data = [os.urandom(150_000), os.urandom(150_000), os.urandom(1000)]
    upload_id = bucket.init_multipart_upload("mp", headers={"x-oss-meta-k": "v"}).upload_id
    assert [u.upload_id for u in bucket.list_multipart_uploads().upload_list] == [upload_id]
    infos = []
    for n, chunk in enumerate(parts_data, start=1):
        r = bucket.upload_part("mp", upload_id, n, chunk)
        assert r.crc == crc64(chunk)
        infos.append(oss2.models.PartInfo(n, r.etag, size=len(chunk), part_crc=r.crc))
    page = bucket.list_parts("mp", upload_id, max_parts=2)
    assert (page.is_truncated, page.next_marker, [p.part_number for p in page.parts]) == (True, "2", [1, 2])
    assert [p.part_number for p in oss2.PartIterator(bucket, "mp", upload_id, max_parts=1)] == [1, 2, 3]
    done = bucket.complete_multipart_upload("mp", upload_id, infos)  # oss2 checks the combined CRC here
    whole = b"".join(parts_data)
    head = bucket.head_object("mp")
    assert done.crc == head.server_crc == crc64(whole)
    assert head.object_type == "Multipart" and head.etag.endswith("-3")
    assert bucket.get_object("mp").read() == whole
    assert bucket.list_multipart_uploads().upload_list == []


def test_small_parts_are_entity_too_small(bucket: oss2.Bucket) -> None:
    upload_id = bucket.init_multipart_upload("small").upload_id
    infos = [oss2.models.PartInfo(n, bucket.upload_part("small", upload_id, n, b"x").etag) for n in (1, 2)]
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.complete_multipart_upload("small", upload_id, infos)
    assert info.value.code == "EntityTooSmall"
    bucket.abort_multipart_upload("small", upload_id)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.list_parts("small", upload_id)


def test_copy_object_and_upload_part_copy(bucket: oss2.Bucket, server: OssService) -> None:
    data = os.urandom(250_000)
    bucket.put_object("src key", data, headers={"x-oss-meta-a": "1"})
    result = bucket.copy_object(bucket.bucket_name, "src key", "copy")
    assert result.etag == bucket.head_object("src key").etag
    assert bucket.head_object("copy").headers["x-oss-meta-a"] == "1"
    bucket.copy_object(
        bucket.bucket_name, "src key", "replaced", headers={"x-oss-metadata-directive": "REPLACE", "x-oss-meta-b": "2"}
    )
    head = bucket.head_object("replaced")
    assert "x-oss-meta-a" not in head.headers and head.headers["x-oss-meta-b"] == "2"
    other = make_bucket(server, server.create_bucket())
    other.copy_object(bucket.bucket_name, "src key", "across")
    assert other.get_object("across").read() == data
    upload_id = bucket.init_multipart_upload("assembled").upload_id
    p1 = bucket.upload_part_copy(bucket.bucket_name, "src key", (0, 199_999), "assembled", upload_id, 1)
    p2 = bucket.upload_part_copy(bucket.bucket_name, "src key", (200_000, len(data) - 1), "assembled", upload_id, 2)
    bucket.complete_multipart_upload(
        "assembled", upload_id, [oss2.models.PartInfo(1, p1.etag), oss2.models.PartInfo(2, p2.etag)]
    )
    assert bucket.get_object("assembled").read() == data
    assert bucket.head_object("assembled").server_crc == crc64(data)
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.copy_object(bucket.bucket_name, "missing", "x")


def test_batch_delete(bucket: oss2.Bucket) -> None:
    keys = ["a", "b c", "d/e+f"]
    for key in keys:
        bucket.put_object(key, b"1")
    assert sorted(bucket.batch_delete_objects(keys).deleted_keys) == sorted(keys)
    assert list(oss2.ObjectIteratorV2(bucket)) == []


def test_bucket_info_and_create(server: OssService) -> None:
    b = make_bucket(server, "mc-made-by-sdk")
    b.create_bucket()
    info = b.get_bucket_info()
    assert (info.name, info.location) == ("mc-made-by-sdk", f"oss-{REGION}")
    b.delete_bucket()


def test_resumable_upload_and_download(bucket: oss2.Bucket, server: OssService, tmp_path: Path) -> None:
    data = os.urandom(1_300_000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    oss2.resumable_upload(
        bucket, "resumable.bin", str(src), store=oss2.ResumableStore(root=str(tmp_path)),
        multipart_threshold=500_000, part_size=300_000, num_threads=2,
    )  # fmt: skip
    assert count(server, "UploadPart") == 5
    ops = [r.operation for r in server.requests]
    assert ops.index("ListParts") == ops.index("InitiateMultipartUpload") + 1
    assert bucket.head_object("resumable.bin").server_crc == crc64(data)
    dst = tmp_path / "dst.bin"
    oss2.resumable_download(
        bucket, "resumable.bin", str(dst), store=oss2.ResumableDownloadStore(root=str(tmp_path)),
        multiget_threshold=400_000, part_size=250_000, num_threads=2,
    )  # fmt: skip
    assert dst.read_bytes() == data
    assert count(server, "GetObject", 206) == 6


# ---- listing -----------------------------------------------------------------------------------------
def test_list_v1_and_v2_pagination_2500_keys(server: OssService) -> None:
    name = server.create_bucket()
    keys = sorted(f"dir{i % 5}/sub{i % 3}/k{i:05d}" for i in range(2500))
    seed(server, name, keys)
    b = make_bucket(server, name)
    assert [o.key for o in oss2.ObjectIterator(b, max_keys=1000)] == keys
    assert [o.key for o in oss2.ObjectIteratorV2(b, max_keys=1000)] == keys
    assert count(server, "ListObjects") == count(server, "ListObjectsV2") == 3
    first = b.list_objects(max_keys=1000)
    assert first.is_truncated and first.next_marker == keys[999]
    first_v2 = b.list_objects_v2(max_keys=1000)
    assert first_v2.is_truncated and first_v2.next_continuation_token
    top = [o.key for o in oss2.ObjectIterator(b, delimiter="/", max_keys=2)]
    assert top == [f"dir{i}/" for i in range(5)]  # a common prefix is never repeated across pages
    sub = [o.key for o in oss2.ObjectIteratorV2(b, prefix="dir1/", delimiter="/", max_keys=1)]
    assert sub == ["dir1/sub0/", "dir1/sub1/", "dir1/sub2/"]
    after = b.list_objects_v2(prefix="dir4/", start_after=keys[-2], max_keys=10)
    assert [o.key for o in after.object_list] == [keys[-1]] and not after.is_truncated


def test_url_encoding_round_trips_odd_keys(bucket: oss2.Bucket) -> None:
    for key in ODD_KEYS:
        bucket.put_object(key, key.encode())
    assert sorted(o.key for o in oss2.ObjectIterator(bucket, max_keys=2)) == sorted(ODD_KEYS)
    assert sorted(o.key for o in oss2.ObjectIteratorV2(bucket, max_keys=2)) == sorted(ODD_KEYS)
    for key in ODD_KEYS:
        assert bucket.get_object(key).read() == key.encode()


# ---- fault injection ---------------------------------------------------------------------------------
def test_flip_fault_is_caught_by_oss2_crc_check(bucket: oss2.Bucket, server: OssService, tmp_path: Path) -> None:
    bucket.put_object("flip.bin", os.urandom(100_000))
    server.faults.add("flip", operation="GetObject", times=1)
    with pytest.raises(oss2.exceptions.InconsistentError):
        bucket.get_object_to_file("flip.bin", str(tmp_path / "out"))
    bucket.get_object_to_file("flip.bin", str(tmp_path / "out"))  # the fault fired once


def test_corrupt_object_is_caught_by_crc(bucket: oss2.Bucket, server: OssService, tmp_path: Path) -> None:
    bucket.put_object("c.bin", os.urandom(10_000))
    server.corrupt(bucket.bucket_name, "c.bin", 5)
    with pytest.raises(oss2.exceptions.InconsistentError):
        bucket.get_object_to_file("c.bin", str(tmp_path / "out"))


def test_status_fault_gives_503(bucket: oss2.Bucket, server: OssService) -> None:
    server.faults.add("status", operation="PutObject", status=503, code="ServiceUnavailable", times=1)
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.put_object("k", b"1")
    assert (info.value.status, info.value.code) == (503, "ServiceUnavailable")
    bucket.put_object("k", b"1")
    server.faults.add("status", operation="HeadObject", status=503, code="SlowDown", times=1)
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.head_object("k")
    assert (info.value.status, info.value.code) == (503, "SlowDown")


def test_reset_faults(bucket: oss2.Bucket, server: OssService) -> None:
    bucket.put_object("r.bin", os.urandom(200_000))
    server.faults.add("reset", operation="GetObject", times=1)
    with pytest.raises((requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError)):
        bucket.get_object("r.bin").read()
    server.faults.add("reset_request", operation="PutObject", times=1)
    with pytest.raises(oss2.exceptions.RequestError):
        bucket.put_object("half.bin", os.urandom(2_000_000))
    assert not bucket.object_exists("half.bin")
    assert bucket.get_object("r.bin").read()
