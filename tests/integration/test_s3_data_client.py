"""The S3 store's GET and PUT through obstore: the same objects, answers and errors as through boto3, credentials
from the boto3 client the connection made, and boto3 wherever obstore could not make the same checks."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_multicloud.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    IntegrityError,
    ObjectNotFoundError,
    TransientStoreError,
)
from airflow_multicloud.stores.retention import RetentionMode, RetentionPolicy
from airflow_multicloud.stores.s3 import S3Store
from multicloud_testbed.s3_server import S3Service
from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

META = {"multicloud-crc64": "00ff00ff00ff00ff", "Origin": "test"}


@pytest.fixture(scope="module")
def service() -> Iterator[S3Service]:
    with S3Service() as svc:
        yield svc


def _store(service: S3Service, bucket: str, data_client: str = "obstore", **kwargs: Any) -> S3Store:
    return S3Store.from_settings(
        bucket,
        access_key_id=ACCESS_KEY,
        secret_access_key=kwargs.pop("secret", SECRET_KEY),
        region=service.region,
        endpoint_url=service.endpoint,
        label=kwargs.pop("label", "aws_test"),
        data_client=data_client,
    )


def _botocore_sends(store: S3Store, operation: str) -> list[dict[str, str]]:
    """The headers of each ``operation`` request botocore sends for ``store`` from now on."""
    seen: list[dict[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append({k.lower(): v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()})

    store.client.meta.events.register(f"before-send.s3.{operation}", capture)
    return seen


def test_both_clients_store_and_read_the_same_objects(service: S3Service) -> None:
    bucket = service.create_bucket()
    fast, plain = _store(service, bucket), _store(service, bucket, "boto3")
    assert fast._fast is not None and plain._fast is None
    data = os.urandom(40_000)
    puts = _botocore_sends(fast, "PutObject")
    etags = [
        s.put_object(f"{n}.bin", data, metadata=META, content_type="text/csv") for n, s in (("f", fast), ("p", plain))
    ]
    assert puts == [], "the obstore store's PUT does not go through botocore"
    assert etags[0] == etags[1] == f'"{__import__("hashlib").md5(data).hexdigest()}"'
    heads = [plain.head(k) for k in ("f.bin", "p.bin")]
    assert [(h.size, h.etag, dict(h.metadata)) for h in heads] == [
        (40_000, etags[0], {k.lower(): v for k, v in META.items()})
    ] * 2
    raw = service.client()
    assert {raw.head_object(Bucket=bucket, Key=k)["ContentType"] for k in ("f.bin", "p.bin")} == {"text/csv"}
    for reader in (fast, plain):
        for key in ("f.bin", "p.bin"):
            assert b"".join(reader.read(key)) == data
            assert b"".join(reader.read(key, 100, 30_000, chunk_size=7_000)) == data[100:30_000]
            assert [len(c) for c in reader.read(key, chunk_size=16_384)] == [16_384, 16_384, 7_232]
    # no content type given: the same as botocore leaves it
    fast.put_object("f2", b"x", metadata={})
    plain.put_object("p2", b"x", metadata={})
    assert (
        raw.head_object(Bucket=bucket, Key="f2")["ContentType"]
        == raw.head_object(Bucket=bucket, Key="p2")["ContentType"]
    )


@pytest.mark.parametrize("key", ["dir/", "/lead", "a//b", "a/./b", "a/../b", "tab\there"])
def test_keys_obstore_would_change_go_through_boto3(service: S3Service, key: str) -> None:
    store = _store(service, service.create_bucket())
    store.put_object(key, b"exact", metadata={"k": "v"})
    assert [o.key for o in store.list()] == [key]
    assert b"".join(store.read(key)) == b"exact"
    assert store.head(key).metadata == {"k": "v"}


def test_errors_name_the_key_and_bucket_never_the_secret(service: S3Service) -> None:
    bucket = service.create_bucket()
    store = _store(service, bucket)
    with pytest.raises(ObjectNotFoundError, match=f"GET s3://{bucket}/missing: no such object"):
        b"".join(store.read("missing"))
    ghost = _store(service, "no-such-bucket-for-obstore", label="aws_ghost")
    for call in (lambda: b"".join(ghost.read("k")), lambda: ghost.put_object("k", b"1", metadata={})):
        with pytest.raises(BucketNotFoundError, match=r"'no-such-bucket-for-obstore'.*aws_ghost"):
            call()
    secret = "wrong-secret-never-shown"
    bad = _store(service, bucket, secret=secret, label="aws_bad")
    for call in (lambda: b"".join(bad.read("k")), lambda: bad.put_object("k", b"1", metadata={})):
        with pytest.raises(AccessDeniedError, match=r"aws_bad.*signature was rejected") as err:
            call()
        chain = f"{err.value} {err.value.__cause__!r} {err.value.__cause__}"
        assert secret not in chain and SECRET_KEY not in chain
    service.faults.add("status", operation="GetObject", status=503, code="SlowDown")
    try:
        with pytest.raises(TransientStoreError, match="503 SlowDown"):
            b"".join(store.read("missing"))
    finally:
        service.faults.clear()


def test_a_changed_put_body_is_refused_before_it_replaces_anything(service: S3Service) -> None:
    store = _store(service, service.create_bucket())
    store.put_object("k", b"old bytes", metadata={})
    rule = service.faults.add("flip_request", operation="PutObject", times=1)
    with pytest.raises(IntegrityError, match="XAmzContentSHA256Mismatch"):
        store.put_object("k", b"new bytes", metadata={})
    assert rule.fired == 1 and b"".join(store.read("k")) == b"old bytes"


def test_the_connection_extra_turns_obstore_off(service: S3Service, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_multicloud.hooks.s3 import s3_store_from_connection
    from airflow_multicloud.hooks.settings import S3ConnectionError, open_s3_env

    bucket = service.create_bucket()
    for conn_id, value, fast in (("aws_fast", None, True), ("aws_plain", "boto3", False)):
        conn = service.connection(conn_id)
        if value:
            conn["extra"]["multicloud_data_client"] = value
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        store = s3_store_from_connection(conn_id, bucket)
        assert (store._fast is not None) is fast
        puts = _botocore_sends(store, "PutObject")
        store.put_object(conn_id, b"1", metadata={})
        assert len(puts) == (0 if fast else 1)
        env = open_s3_env(type("C", (), {**conn, "extra_dejson": conn["extra"]})(), conn_id, bucket, None)
        assert isinstance(env, S3Store) and (env._fast is not None) is fast
    conn = service.connection("aws_typo")
    conn["extra"]["multicloud_data_client"] = "rust"
    monkeypatch.setenv("AIRFLOW_CONN_AWS_TYPO", json.dumps(conn))
    with pytest.raises(S3ConnectionError, match=r"'aws_typo'.*multicloud_data_client.*'rust'"):
        s3_store_from_connection("aws_typo", bucket)


def test_object_lock_uploads_go_through_boto3_with_a_content_md5(service: S3Service) -> None:
    bucket = f"lock-fast-{datetime.now(UTC):%H%M%S%f}"
    service.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    store = _store(service, bucket)
    puts = _botocore_sends(store, "PutObject")
    store.retention = RetentionPolicy(
        datetime.now(UTC).replace(microsecond=0) + timedelta(days=1), RetentionMode.GOVERNANCE
    )
    store.write("held", [b"s"])
    assert len(puts) == 1 and "content-md5" in puts[0]
    assert store.object_retention("held").mode == "GOVERNANCE"
    # a bucket whose default retention the run does not know of: S3 asks for the digest, boto3 sends it
    bucket = f"lock-default-{datetime.now(UTC):%H%M%S%f}"
    service.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    store.client.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    unaware = _store(service, bucket)
    later = _botocore_sends(unaware, "PutObject")
    unaware.write("default", [b"d"])
    assert unaware.lock_digest and len(later) == 1 and "content-md5" in later[0]
    assert b"".join(unaware.read("default")) == b"d"


def test_refreshing_credentials_reach_obstore(service: S3Service) -> None:
    import boto3
    from botocore.credentials import RefreshableCredentials
    from botocore.session import get_session

    from airflow_multicloud.stores.s3_client import make_client

    calls = []

    def refresh() -> dict[str, str]:
        calls.append(1)
        expiry = datetime.now(UTC) + timedelta(hours=1)
        return {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "token": "", "expiry_time": expiry.isoformat()}

    # the first credentials are wrong and expire within botocore's mandatory refresh window: only refreshed ones work
    expired = datetime.now(UTC) + timedelta(seconds=30)
    first = {"access_key": ACCESS_KEY, "secret_key": "stale", "token": "", "expiry_time": expired.isoformat()}
    botocore_session = get_session()
    botocore_session._credentials = RefreshableCredentials.create_from_metadata(first, refresh, "assume-role")
    config = make_client(ACCESS_KEY, SECRET_KEY, None, service.region, service.endpoint).meta.config
    client = boto3.session.Session(botocore_session=botocore_session).client(
        "s3", endpoint_url=service.endpoint, region_name=service.region, config=config
    )
    store = S3Store(client, service.create_bucket(), label="aws_role")
    assert store._fast is not None and store._fast.store.credential_provider is not None
    store.put_object("k", b"role", metadata={})
    assert b"".join(store.read("k")) == b"role"
    assert len(calls) >= 1, "the credentials came from the refreshing provider"


@pytest.fixture
def stalled_server() -> Iterator[str]:
    """An HTTP server that accepts connections and reads requests but never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.mark.timeout(60, method="thread")
def test_a_stalled_server_fails_the_request_within_the_clients_read_timeout(stalled_server: str) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.session.Session(ACCESS_KEY, SECRET_KEY, region_name="us-east-1").client(
        "s3",
        endpoint_url=stalled_server,
        config=Config(read_timeout=1, connect_timeout=1, retries={"total_max_attempts": 2, "mode": "standard"}),
    )
    store = S3Store(client, "bucket", label="aws_stalled")
    assert store._fast is not None
    with pytest.raises(TransientStoreError, match="connection problem"):
        b"".join(store.read("k"))
    with pytest.raises(TransientStoreError, match="connection problem"):
        store.put_object("k", b"1", metadata={})


@pytest.mark.parametrize("code", ["AuthorizationHeaderMalformed", "PermanentRedirect"])
def test_a_region_refused_to_obstore_is_left_to_botocore(service: S3Service, code: str) -> None:
    """botocore follows S3's answers about a bucket's region (and remembers it); obstore does not: the store then
    sends the same request through boto3, and from then on every request."""
    store = _store(service, service.create_bucket())
    store.put_object("k", b"here", metadata={})
    status = 301 if code == "PermanentRedirect" else 400
    service.faults.add("status", operation="GetObject", status=status, code=code, times=1)
    assert b"".join(store.read("k")) == b"here"
    assert store._fast is None
    other = _store(service, store.bucket)
    service.faults.add("status", operation="PutObject", status=status, code=code, times=1)
    other.put_object("k2", b"there", metadata={})
    assert other._fast is None and b"".join(other.read("k2")) == b"there"
