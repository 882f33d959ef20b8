"""The local COS server through the real cos-python-sdk-v5 over HTTP: signatures, error codes, the SDK's
high-level helpers, listing, CRC64 headers and fault injection."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from qcloud_cos import CosS3Client
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from airflow_multicloud.checksums import crc64
from airflow_multicloud.stores.base import MiB
from airflow_multicloud.stores.cos import EndpointAdapter, make_client
from multicloud_testbed.cos_limits import CosLimits
from multicloud_testbed.cos_server import CosService
from multicloud_testbed.http import RequestRecord
from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

ODD_KEYS = ["with space.txt", "unicode/数据/ü.csv", "a+b%20c#d?e=f&g", "x<y>&'\".bin", "tab\there", "~tilde/./dot"]


@pytest.fixture(scope="module")
def svc() -> Iterator[CosService]:
    service = CosService().start()
    yield service
    service.stop()


def _settle(svc: CosService) -> list[RequestRecord]:
    """The server logs a request just after answering it: wait until the log stops growing."""
    seen = -1
    while seen != len(svc.requests):
        seen = len(svc.requests)
        time.sleep(0.05)
    return svc.requests


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
def client(svc: CosService) -> CosS3Client:
    return svc.client(retries=0)


def _error(exc: pytest.ExceptionInfo[CosServiceError]) -> tuple[int, str]:
    digest = exc.value.get_digest_msg()
    assert isinstance(digest, dict), digest
    assert all(digest.get(f) for f in ("code", "message", "resource", "requestid")), digest
    return exc.value.get_status_code(), exc.value.get_error_code()


def _seed(svc: CosService, bucket: str, keys: list[str]) -> None:
    """Objects written straight to the server's disk: the listing, not the upload, is under test."""
    for key in keys:
        svc.server.buckets.put(bucket, key, io.BytesIO(b"x"), 1)


# ---- signatures ---------------------------------------------------------------------------------------
def test_wrong_secret_is_rejected_and_nothing_is_stored(svc: CosService, bucket: str) -> None:
    bad = svc.client(secret="not-the-secret", retries=0)
    with pytest.raises(CosServiceError) as exc:
        bad.put_object(Bucket=bucket, Key="k", Body=b"data")
    assert _error(exc) == (403, "SignatureDoesNotMatch")
    assert list(svc.server.buckets.iter_keys(bucket)) == []


def test_unknown_secret_id_is_rejected(svc: CosService, bucket: str) -> None:
    bad = make_client(
        secret_id="AKIDunknown",
        secret_key=SECRET_KEY,
        region=svc.region,
        scheme="http",
        endpoint=svc.endpoint,
        retries=0,
    )
    with pytest.raises(CosServiceError) as exc:
        bad.list_objects(Bucket=bucket)
    assert _error(exc) == (403, "SignatureDoesNotMatch")


def test_unsigned_request_is_denied(svc: CosService, bucket: str) -> None:
    host = f"{bucket}.cos.{svc.region}.myqcloud.com"
    resp = requests.get(f"{svc.endpoint}/k", headers={"Host": host}, timeout=10)
    assert resp.status_code == 403
    assert "<Code>AccessDenied</Code>" in resp.text


def test_presigned_url_query_string_signature(svc: CosService, bucket: str, client: CosS3Client) -> None:
    client.put_object(Bucket=bucket, Key="dir/presigned file+1.txt", Body=b"hello")
    url = client.get_presigned_url(Bucket=bucket, Key="dir/presigned file+1.txt", Method="GET", Expired=60)
    session = requests.Session()
    session.mount("http://", EndpointAdapter(svc.endpoint))
    assert session.get(url, timeout=10).content == b"hello"
    assert session.get(url.replace("q-signature=", "q-signature=0"), timeout=10).status_code == 403


def test_signed_request_with_security_token(svc: CosService, bucket: str) -> None:
    temp = make_client(
        secret_id=ACCESS_KEY,
        secret_key=SECRET_KEY,
        token="session-token",
        region=svc.region,
        scheme="http",
        endpoint=svc.endpoint,
        retries=0,
    )
    temp.put_object(Bucket=bucket, Key="t", Body=b"1")
    assert temp.head_object(Bucket=bucket, Key="t")["Content-Length"] == "1"


# ---- error codes ---------------------------------------------------------------------------------------
def test_error_codes(svc: CosService, bucket: str, client: CosS3Client) -> None:
    with pytest.raises(CosServiceError) as exc:
        client.get_object(Bucket=bucket, Key="missing")
    assert _error(exc) == (404, "NoSuchKey")
    with pytest.raises(CosServiceError) as exc:
        client.list_objects(Bucket="nothere-1250000000")
    assert _error(exc) == (404, "NoSuchBucket")
    with pytest.raises(CosServiceError) as exc:
        client.upload_part(Bucket=bucket, Key="k", Body=b"x", PartNumber=1, UploadId="NOSUCHUPLOAD")
    assert _error(exc) == (404, "NoSuchUpload")
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    client.upload_part(Bucket=bucket, Key="k", Body=b"x", PartNumber=1, UploadId=upload_id)
    with pytest.raises(CosServiceError) as exc:
        client.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Part": [{"PartNumber": 1, "ETag": '"0000"'}]}
        )
    assert _error(exc) == (400, "InvalidPart")
    with pytest.raises(CosServiceError) as exc:
        client.put_object(Bucket=bucket, Key="md5", Body=b"data", ContentMD5="1B2M2Y8AsgTpgAmY7PhCfg==")
    assert _error(exc) == (400, "BadDigest")
    with pytest.raises(CosServiceError) as exc:
        client.head_object(Bucket=bucket, Key="md5")
    assert exc.value.get_status_code() == 404
    with pytest.raises(CosServiceError) as exc:
        client.get_object(Bucket=bucket, Key="k", Range="bytes=5-9")
    assert exc.value.get_status_code() == 404


def test_content_md5_accepted_when_right(bucket: str, client: CosS3Client) -> None:
    client.put_object(Bucket=bucket, Key="md5", Body=b"data", EnableMD5=True)
    assert client.get_object(Bucket=bucket, Key="md5")["Body"].get_raw_stream().read() == b"data"


# ---- the SDK's high-level helpers ----------------------------------------------------------------------
def test_upload_file_download_file_with_crc_and_copy(
    svc: CosService, bucket: str, client: CosS3Client, tmp_path: Path
) -> None:
    data = os.urandom(11 * MiB + 123)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    client.upload_file(Bucket=bucket, Key="big/file.bin", LocalFilePath=str(src), PartSize=5, MAXThread=3)
    ops = [r.operation for r in _settle(svc)]
    assert ops.count("UploadPart") == 3 and ops.count("CompleteMultipartUpload") == 1
    head = client.head_object(Bucket=bucket, Key="big/file.bin")
    assert head["x-cos-hash-crc64ecma"] == str(crc64(data))
    assert head["Content-Length"] == str(len(data))

    _settle(svc)
    svc.clear_log()
    dst = tmp_path / "dst.bin"
    client.download_file(
        Bucket=bucket,
        Key="big/file.bin",
        DestFilePath=str(dst),
        PartSize=2,
        MAXThread=3,
        EnableCRC=True,
        DumpRecordDir=str(tmp_path / "records"),
    )
    assert dst.read_bytes() == data
    assert sum(1 for r in _settle(svc) if r.operation == "GetObject" and r.range) == 6

    other = svc.create_bucket()
    source = {"Bucket": bucket, "Key": "big/file.bin", "Region": svc.region}
    client.copy(Bucket=other, Key="copied.bin", CopySource=source)
    assert client.head_object(Bucket=other, Key="copied.bin")["x-cos-hash-crc64ecma"] == str(crc64(data))


def test_download_file_detects_corruption_by_crc(
    svc: CosService, bucket: str, client: CosS3Client, tmp_path: Path
) -> None:
    data = os.urandom(3 * MiB)
    client.put_object(Bucket=bucket, Key="c.bin", Body=data)
    svc.corrupt(bucket, "c.bin", 12345)
    with pytest.raises(CosClientError, match="crc"):
        client.download_file(
            Bucket=bucket,
            Key="c.bin",
            DestFilePath=str(tmp_path / "c"),
            PartSize=1,
            EnableCRC=True,
            DumpRecordDir=str(tmp_path / "records"),
        )


def test_copy_object_directives_and_upload_part_copy(svc: CosService, bucket: str, client: CosS3Client) -> None:
    client.put_object(
        Bucket=bucket, Key="src", Body=b"0123456789", ContentType="text/plain", Metadata={"x-cos-meta-owner": "a"}
    )
    source = {"Bucket": bucket, "Key": "src", "Region": svc.region}
    client.copy_object(Bucket=bucket, Key="kept", CopySource=source)
    kept = client.head_object(Bucket=bucket, Key="kept")
    assert kept["x-cos-meta-owner"] == "a" and kept["Content-Type"] == "text/plain"
    client.copy_object(
        Bucket=bucket, Key="replaced", CopySource=source, CopyStatus="Replaced", Metadata={"x-cos-meta-team": "b"}
    )
    replaced = client.head_object(Bucket=bucket, Key="replaced")
    assert replaced["x-cos-meta-team"] == "b" and "x-cos-meta-owner" not in replaced

    big = os.urandom(MiB + 10)  # every part but the last is at least 1 MB on COS
    client.put_object(Bucket=bucket, Key="big", Body=big)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    p1 = client.upload_part_copy(
        Bucket=bucket,
        Key="assembled",
        PartNumber=1,
        UploadId=upload_id,
        CopySource={**source, "Key": "big"},
        CopySourceRange=f"bytes=2-{MiB + 1}",
    )
    p2 = client.upload_part_copy(Bucket=bucket, Key="assembled", PartNumber=2, UploadId=upload_id, CopySource=source)
    parts = [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]
    done = client.complete_multipart_upload(
        Bucket=bucket, Key="assembled", UploadId=upload_id, MultipartUpload={"Part": parts}
    )
    assert done["x-cos-hash-crc64ecma"] == str(crc64(big[2 : MiB + 2] + b"0123456789"))
    body = client.get_object(Bucket=bucket, Key="assembled")["Body"].get_raw_stream().read()
    assert body == big[2 : MiB + 2] + b"0123456789"


def test_parts_under_1_mb_but_the_last_are_refused_at_complete(bucket: str, client: CosS3Client) -> None:
    """COS parts are 1 MB to 5 GB but the last (Upload Part API): a smaller one fails the whole upload at
    CompleteMultipartUpload with 400 EntityTooSmall, whatever the SDK or tool that uploaded it."""
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="tiny-parts")["UploadId"]
    sizes = {1: MiB - 1, 2: MiB, 3: 5}
    etags = {
        n: client.upload_part(Bucket=bucket, Key="tiny-parts", Body=b"p" * size, PartNumber=n, UploadId=upload_id)[
            "ETag"
        ]
        for n, size in sizes.items()
    }
    with pytest.raises(CosServiceError) as refused:
        client.complete_multipart_upload(
            Bucket=bucket,
            Key="tiny-parts",
            UploadId=upload_id,
            MultipartUpload={"Part": [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)]},
        )
    assert (refused.value.get_status_code(), refused.value.get_error_code()) == (400, "EntityTooSmall")
    assert "Part 1" in refused.value.get_error_msg()
    # the upload is still there: without the short part (the 5-byte last part may be small) it completes
    done = client.complete_multipart_upload(
        Bucket=bucket,
        Key="tiny-parts",
        UploadId=upload_id,
        MultipartUpload={"Part": [{"PartNumber": n, "ETag": etags[n]} for n in (2, 3)]},
    )
    assert done["ETag"].endswith('-2"')
    assert int(client.head_object(Bucket=bucket, Key="tiny-parts")["Content-Length"]) == MiB + 5


def test_copy_object_over_the_copy_limit_is_refused_as_entity_too_large(
    svc: CosService, bucket: str, client: CosS3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PUT Object - Copy takes sources up to 5 GB; COS answers a bigger one with 400 EntityTooLarge (a multipart
    Upload Part - Copy is the way). 5 GB of test data is impractical: the server's limit is lowered to 1 MiB."""
    monkeypatch.setattr(svc.server, "limits", CosLimits(max_copy_source=MiB))
    client.put_object(Bucket=bucket, Key="at-limit", Body=b"a" * MiB)
    client.put_object(Bucket=bucket, Key="over-limit", Body=b"o" * (MiB + 1))
    source = {"Bucket": bucket, "Region": svc.region}
    client.copy_object(Bucket=bucket, Key="copy-at-limit", CopySource={**source, "Key": "at-limit"})
    with pytest.raises(CosServiceError) as refused:
        client.copy_object(Bucket=bucket, Key="copy-over-limit", CopySource={**source, "Key": "over-limit"})
    assert (refused.value.get_status_code(), refused.value.get_error_code()) == (400, "EntityTooLarge")
    with pytest.raises(CosServiceError):
        client.head_object(Bucket=bucket, Key="copy-over-limit")
    # Upload Part - Copy of the same source is accepted
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="copy-over-limit")["UploadId"]
    part = client.upload_part_copy(
        Bucket=bucket,
        Key="copy-over-limit",
        PartNumber=1,
        UploadId=upload_id,
        CopySource={**source, "Key": "over-limit"},
    )
    client.complete_multipart_upload(
        Bucket=bucket,
        Key="copy-over-limit",
        UploadId=upload_id,
        MultipartUpload={"Part": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert int(client.head_object(Bucket=bucket, Key="copy-over-limit")["Content-Length"]) == MiB + 1


def test_delete_objects(svc: CosService, bucket: str, client: CosS3Client) -> None:
    _seed(svc, bucket, ["a", "b", "c"])
    result = client.delete_objects(Bucket=bucket, Delete={"Object": [{"Key": "a"}, {"Key": "b"}], "Quiet": "false"})
    assert sorted(d["Key"] for d in result["Deleted"]) == ["a", "b"]
    assert list(svc.server.buckets.iter_keys(bucket)) == ["c"]


# ---- listing -------------------------------------------------------------------------------------------
def test_list_pagination_and_delimiter(svc: CosService, bucket: str, client: CosS3Client) -> None:
    keys = [f"dir{i % 5}/file{i:04d}" for i in range(2_490)] + [f"top{i}" for i in range(10)]
    _seed(svc, bucket, keys)
    seen: list[str] = []
    marker, pages = "", 0
    while True:
        page = client.list_objects(Bucket=bucket, Marker=marker, MaxKeys=1000)
        pages += 1
        seen += [c["Key"] for c in page.get("Contents", [])]
        if page["IsTruncated"] == "false":
            break
        marker = page["NextMarker"]
    assert pages == 3 and seen == sorted(keys)

    prefixes: list[str] = []
    contents: list[str] = []
    marker = ""
    while True:
        page = client.list_objects(Bucket=bucket, Delimiter="/", Marker=marker, MaxKeys=2)
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        contents += [c["Key"] for c in page.get("Contents", [])]
        if page["IsTruncated"] == "false":
            break
        marker = page["NextMarker"]
    assert prefixes == [f"dir{i}/" for i in range(5)]
    assert contents == [f"top{i}" for i in range(10)]
    page = client.list_objects(Bucket=bucket, Prefix="dir3/", MaxKeys=1000)
    assert len(page["Contents"]) == 498 and page["IsTruncated"] == "false"


def test_encoding_type_url_with_odd_keys(svc: CosService, bucket: str, client: CosS3Client) -> None:
    for key in ODD_KEYS:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert client.get_object(Bucket=bucket, Key=key)["Body"].get_raw_stream().read() == key.encode()
    decoded = [c["Key"] for c in client.list_objects(Bucket=bucket)["Contents"]]
    assert decoded == sorted(ODD_KEYS)
    raw = client.list_objects(Bucket=bucket, EncodingType="url")
    assert raw["EncodingType"] == "url"
    assert "a%2Bb%2520c%23d%3Fe%3Df%26g" in [c["Key"] for c in raw["Contents"]]
    assert [p["Prefix"] for p in client.list_objects(Bucket=bucket, Delimiter="/")["CommonPrefixes"]] == [
        "unicode/",
        "~tilde/",
    ]


def test_list_parts_and_uploads_pagination(bucket: str, client: CosS3Client) -> None:
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="m p+")["UploadId"]
    for n in (1, 2, 3):
        client.upload_part(Bucket=bucket, Key="m p+", Body=b"p" * n, PartNumber=n, UploadId=upload_id)
    first = client.list_parts(Bucket=bucket, Key="m p+", UploadId=upload_id, MaxParts=2)
    assert first["IsTruncated"] == "true" and [p["PartNumber"] for p in first["Part"]] == ["1", "2"]
    rest = client.list_parts(
        Bucket=bucket, Key="m p+", UploadId=upload_id, MaxParts=2, PartNumberMarker=int(first["NextPartNumberMarker"])
    )
    assert rest["IsTruncated"] == "false" and [p["Size"] for p in rest["Part"]] == ["3"]
    other = client.create_multipart_upload(Bucket=bucket, Key="m p+")["UploadId"]
    page = client.list_multipart_uploads(Bucket=bucket, MaxUploads=1)
    assert page["IsTruncated"] == "true" and page["Upload"][0]["Key"] == "m p+"
    page2 = client.list_multipart_uploads(
        Bucket=bucket, MaxUploads=1, KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"]
    )
    assert {page["Upload"][0]["UploadId"], page2["Upload"][0]["UploadId"]} == {upload_id, other}
    client.abort_multipart_upload(Bucket=bucket, Key="m p+", UploadId=other)
    client.abort_multipart_upload(Bucket=bucket, Key="m p+", UploadId=upload_id)
    assert "Upload" not in client.list_multipart_uploads(Bucket=bucket)


# ---- CRC64 -------------------------------------------------------------------------------------------
def test_crc64_headers_single_and_multipart(bucket: str, client: CosS3Client) -> None:
    data = os.urandom(100_000)
    put = client.put_object(Bucket=bucket, Key="one", Body=data)
    assert put["x-cos-hash-crc64ecma"] == str(crc64(data))
    get = client.get_object(Bucket=bucket, Key="one")
    assert get["x-cos-hash-crc64ecma"] == str(crc64(data))

    parts = [os.urandom(5 * MiB), os.urandom(777)]
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="multi")["UploadId"]
    listed = []
    for n, part in enumerate(parts, 1):
        resp = client.upload_part(Bucket=bucket, Key="multi", Body=part, PartNumber=n, UploadId=upload_id)
        assert resp["x-cos-hash-crc64ecma"] == str(crc64(part))
        listed.append({"PartNumber": n, "ETag": resp["ETag"]})
    done = client.complete_multipart_upload(
        Bucket=bucket, Key="multi", UploadId=upload_id, MultipartUpload={"Part": listed}
    )
    whole = str(crc64(b"".join(parts)))
    assert done["x-cos-hash-crc64ecma"] == whole
    assert client.head_object(Bucket=bucket, Key="multi")["x-cos-hash-crc64ecma"] == whole
    assert done["ETag"].endswith('-2"')


# ---- fault injection -----------------------------------------------------------------------------------
def test_status_fault_reaches_the_sdk_as_503(svc: CosService, bucket: str, client: CosS3Client) -> None:
    rule = svc.faults.add("status", operation="PutObject", times=1)
    with pytest.raises(CosServiceError) as exc:
        client.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert _error(exc) == (503, "SlowDown")
    assert rule.fired == 1
    client.put_object(Bucket=bucket, Key="k", Body=b"x")


def test_sdk_retry_gets_past_one_503(svc: CosService, bucket: str) -> None:
    svc.faults.add("status", operation="HeadObject", times=1, status=500, code="InternalError")
    retrying = svc.client(retries=1)
    retrying.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert retrying.head_object(Bucket=bucket, Key="k")["Content-Length"] == "1"
    assert [r.status for r in _settle(svc) if r.operation == "HeadObject"] == [500, 200]


def test_flip_fault_changes_get_bytes(svc: CosService, bucket: str, client: CosS3Client) -> None:
    data = os.urandom(4096)
    client.put_object(Bucket=bucket, Key="f", Body=data)
    svc.faults.add("flip", operation="GetObject", times=1)
    flipped = client.get_object(Bucket=bucket, Key="f")["Body"].get_raw_stream().read()
    assert len(flipped) == len(data) and flipped != data
    assert client.get_object(Bucket=bucket, Key="f")["Body"].get_raw_stream().read() == data


def test_reset_fault_breaks_the_download(svc: CosService, bucket: str, client: CosS3Client, tmp_path: Path) -> None:
    client.put_object(Bucket=bucket, Key="r", Body=os.urandom(2 * MiB))
    svc.faults.add("reset", operation="GetObject", times=1)
    with pytest.raises((OSError, requests.RequestException)):
        client.get_object(Bucket=bucket, Key="r")["Body"].get_stream_to_file(str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_reset_request_fault_stores_nothing(svc: CosService, bucket: str, client: CosS3Client) -> None:
    svc.faults.add("reset_request", operation="PutObject")
    with pytest.raises(CosClientError):
        client.put_object(Bucket=bucket, Key="half", Body=os.urandom(MiB))
    assert list(svc.server.buckets.iter_keys(bucket)) == []
