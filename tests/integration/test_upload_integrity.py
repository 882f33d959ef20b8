"""How each store proves an upload arrived intact, with one hash pass at most per byte.

- single PUTs: the server refuses changed bytes before they replace anything (Content-MD5 for COS/OSS and S3
  over https; the signed payload SHA-256 for S3 over http);
- parts (invisible until the upload completes): COS/OSS answer with the part's CRC64, compared with that of the
  bytes sent; S3 over http verifies the signed payload hash, so no Content-MD5 (a second hash on both ends).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from airflow_multicloud.errors import IntegrityError, ObjectNotFoundError
from airflow_multicloud.stores.base import MiB, TransferConfig

SMALL_PARTS = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB, max_concurrency=2)


def _bucket(service: Any, name: str) -> str:
    return str(service.create_bucket(name))


def _boto3_only(store: Any) -> Any:
    """The same S3 bucket with every request through botocore (single PUTs go through obstore by default, whose
    signed payload test_s3_data_client.py checks)."""
    from airflow_multicloud.stores.s3 import S3Store

    return S3Store(store.client, store.bucket, transfer=store.transfer, data_client="boto3")


@pytest.mark.parametrize("name", ["cos", "oss"])
def test_corrupted_part_is_caught_by_the_crc64_the_store_reports(clean_services: dict[str, Any], name: str) -> None:
    service = clean_services[name]
    store = service.store(_bucket(service, f"crc-part-{name}"), transfer=SMALL_PARTS)
    rule = service.faults.add("flip_request", operation="UploadPart", times=1)
    data = os.urandom(11 * MiB)
    with pytest.raises(IntegrityError, match=r"part \d stored with CRC64 [0-9a-f]{16}, the bytes sent have"):
        store.write("big.bin", [data])
    assert rule.fired == 1
    with pytest.raises(ObjectNotFoundError):  # the upload was aborted: nothing half-written is visible
        store.head("big.bin")
    assert list(store.list_multipart_uploads()) == []
    sent = store.write("big.bin", [data])  # the next attempt goes through and the store agrees on every byte
    assert store.head("big.bin").crc64 == sent.crc64 and sent.parts == 3


@pytest.mark.parametrize("name", ["cos", "oss"])
def test_corrupted_single_put_is_refused_before_it_replaces_anything(clean_services: dict[str, Any], name: str) -> None:
    service = clean_services[name]
    store = service.store(_bucket(service, f"crc-put-{name}"))
    store.write("k.csv", [b"good,old\n"])
    service.faults.add("flip_request", operation="PutObject", times=1)
    with pytest.raises(IntegrityError):
        store.write("k.csv", [b"new,bytes\n"])
    assert b"".join(store.read("k.csv")) == b"good,old\n"


def test_s3_over_http_relies_on_the_signed_payload_not_a_content_md5(clean_services: dict[str, Any]) -> None:
    service = clean_services["s3"]
    store = _boto3_only(service.store(_bucket(service, "signed-payload"), transfer=SMALL_PARTS))
    assert store.payload_signed  # http endpoint: botocore signs each body's SHA-256
    sent_headers: list[dict[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        sent_headers.append(
            {k.lower(): v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()}
        )

    store.client.meta.events.register("before-send.s3.UploadPart", capture)
    store.client.meta.events.register("before-send.s3.PutObject", capture)
    data = os.urandom(11 * MiB)
    store.write("big.bin", [data])
    store.write("small.bin", [b"x" * 100])
    assert len(sent_headers) == 4  # 3 parts + 1 PUT
    for headers in sent_headers:
        assert "content-md5" not in headers
        assert len(headers["x-amz-content-sha256"]) == 64  # the payload's SHA-256, which S3 verifies
    rule = service.faults.add("flip_request", operation="UploadPart", times=1)
    with pytest.raises(IntegrityError, match="XAmzContentSHA256Mismatch"):
        store.write("big2.bin", [data])
    assert rule.fired == 1
    put_rule = service.faults.add("flip_request", operation="PutObject", times=1)
    with pytest.raises(IntegrityError, match="XAmzContentSHA256Mismatch"):
        store.write("small.bin", [b"y" * 100])
    assert put_rule.fired == 1 and b"".join(store.read("small.bin")) == b"x" * 100


def test_s3_over_https_sends_content_md5(clean_services: dict[str, Any]) -> None:
    """botocore sends UNSIGNED-PAYLOAD over https when a Content-MD5 is given: then the MD5 is the proof.
    (No TLS server here: only the decision is checked, on a client whose endpoint says https.)"""
    from airflow_multicloud.stores.s3 import S3Store

    store = S3Store.from_settings(
        "b", access_key_id="k", secret_access_key="s", region="us-east-1", endpoint_url="https://s3.example.test"
    )
    assert not store.payload_signed
    assert set(store._digest(b"abc")) == {"ContentMD5"}


@pytest.mark.parametrize("signature", ["s3", "unsigned"])
def test_s3_signatures_without_a_payload_hash_send_content_md5(signature: str) -> None:
    """SigV2 (``s3``) and unsigned requests sign no payload, even over http: the MD5 must be sent."""
    import boto3
    import botocore
    from botocore.config import Config

    from airflow_multicloud.stores.s3 import S3Store

    version = botocore.UNSIGNED if signature == "unsigned" else signature
    client = boto3.session.Session("k", "s", region_name="us-east-1").client(
        "s3", endpoint_url="http://127.0.0.1:9", config=Config(signature_version=version)
    )
    store = S3Store(client, "b")
    assert not store.payload_signed
    assert set(store._digest(b"abc")) == {"ContentMD5"}


def test_s3_small_bodies_skip_expect_100_continue(clean_services: dict[str, Any]) -> None:
    """botocore makes every PUT wait for '100 Continue'; a round trip per small object is dropped, large bodies
    keep it (it spares re-sending megabytes that would be refused)."""
    service = clean_services["s3"]
    store = _boto3_only(service.store(_bucket(service, "expect-continue"), transfer=SMALL_PARTS))
    seen: list[tuple[str, int, str | None]] = []

    def capture(request: Any, **_: Any) -> None:
        value = request.headers.get("Expect")
        body = request.body
        size = len(body) if isinstance(body, bytes) else len(body.getvalue()) if hasattr(body, "getvalue") else 0
        name = request.url.split("?")[0].rsplit("/", 1)[-1]
        seen.append((name, size, value.decode() if isinstance(value, bytes) else value))

    store.client.meta.events.register("before-send.s3", capture)
    store.write("small.bin", [b"x" * 1000])
    store.write("parts.bin", [os.urandom(6 * MiB)])
    assert ("small.bin", 1000, None) in seen
    assert ("parts.bin", 5 * MiB, "100-continue") in seen  # part 1
    assert ("parts.bin", 1 * MiB, None) in seen  # part 2
    assert b"".join(store.read("small.bin")) == b"x" * 1000


def test_the_proof_of_an_upload_is_its_crc64_or_else_its_md5_etag() -> None:
    import hashlib

    from airflow_multicloud.checksums import crc64
    from airflow_multicloud.stores.base import check_sent_part

    data = b"part bytes" * 1000
    md5 = hashlib.md5(data).hexdigest()
    assert check_sent_part("cos://b/k", "part 1", data, crc64(data), "whatever") == "whatever"
    with pytest.raises(IntegrityError, match="part 1 stored with CRC64"):
        check_sent_part("cos://b/k", "part 1", data, crc64(data) ^ 1, md5)
    # no CRC64 in the answer: the ETag must be the MD5 of what was sent
    assert check_sent_part("oss://b/k", "part 2", data, None, f'"{md5.upper()}"') == f'"{md5.upper()}"'
    with pytest.raises(IntegrityError, match="part 2 stored with ETag"):
        check_sent_part("oss://b/k", "part 2", data, None, hashlib.md5(b"other").hexdigest())
