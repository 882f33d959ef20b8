"""Write-once retention on each cloud's lock path, over the real SDKs against the local servers: what is written
with ``retention`` is reported retained, and deletes and overwrites during retention are refused with the error
each cloud answers (COS AccessDenied, OSS 409 FileImmutable, S3 AccessDenied on the locked version)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_multicloud.errors import RetentionLockedError
from airflow_multicloud.stores.base import MiB, ObjectStore, TransferConfig
from airflow_multicloud.stores.retention import RetentionMode, RetentionPolicy

SMALL = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB)
BIG = b"m" * (6 * MiB)  # two parts


def _policy(days: int = 3, mode: RetentionMode = RetentionMode.COMPLIANCE) -> RetentionPolicy:
    return RetentionPolicy(datetime.now(UTC).replace(microsecond=0) + timedelta(days=days), mode)


def locked_cos(svc: Any) -> ObjectStore:
    bucket = svc.create_bucket()
    store = svc.store(bucket, transfer=SMALL)
    store.client.put_bucket_object_lock(Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    return store


def locked_oss(svc: Any, days: int = 5) -> ObjectStore:
    store = svc.store(svc.create_bucket(), transfer=SMALL)
    worm_id = store.client.init_bucket_worm(days).worm_id
    store.client.complete_bucket_worm(worm_id)
    return store


def locked_s3(svc: Any) -> ObjectStore:
    bucket = f"lock-{datetime.now(UTC):%H%M%S%f}"
    svc.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return svc.store(bucket, transfer=SMALL)


def test_cos_object_lock_retains_what_is_written_and_refuses_delete_and_overwrite(cos_service: Any) -> None:
    store = locked_cos(cos_service)
    status = store.retention_status()
    assert status.enabled and status.level == "object"
    policy = _policy()
    store.retention = policy
    store.write("small.csv", [b"a,b\n1,2\n"])
    store.write("big.bin", [BIG])
    for key in ("small.csv", "big.bin"):
        held = store.object_retention(key)
        assert held.mode == "COMPLIANCE" and held.until == policy.until
    store.retention = None
    with pytest.raises(RetentionLockedError, match="retains it until"):
        store.delete("small.csv")
    with pytest.raises(RetentionLockedError):
        store.write("small.csv", [b"overwritten"])
    with pytest.raises(RetentionLockedError):
        store.write("big.bin", [BIG[:-1] + b"x"])
    assert b"".join(store.read("small.csv")) == b"a,b\n1,2\n"
    assert store.head("big.bin").size == len(BIG)


def test_cos_retention_only_extends_and_needs_object_lock(cos_service: Any) -> None:
    store = locked_cos(cos_service)
    store.retention = _policy(days=5)
    store.write("k", [b"x"])
    store.retention = _policy(days=1)
    with pytest.raises(Exception, match=r"InvalidArgument|extended"):
        store._retain("k")
    plain = cos_service.store(cos_service.create_bucket())
    assert not plain.retention_status().enabled
    assert "object lock" in plain.retention_status().remedy
    plain.retention = _policy()
    with pytest.raises(Exception, match="object lock is not enabled"):
        plain.write("k", [b"x"])


def test_cos_batch_delete_keeps_retained_objects(cos_service: Any) -> None:
    """A lifecycle-like sweep (one DeleteObjects of everything) removes only what is not retained."""
    store = locked_cos(cos_service)
    store.write("free", [b"1"])
    store.retention = _policy()
    store.write("kept", [b"2"])
    answer = store.client.delete_objects(
        Bucket=store.bucket, Delete={"Object": [{"Key": "free"}, {"Key": "kept"}], "Quiet": "false"}
    )
    assert [e["Key"] for e in answer.get("Error", [])] == ["kept"]
    assert answer["Error"][0]["Code"] == "AccessDenied"
    assert [o.key for o in store.list()] == ["kept"]


def test_oss_worm_refuses_delete_and_overwrite_with_file_immutable(oss_service: Any) -> None:
    store = locked_oss(oss_service, days=5)
    status = store.retention_status()
    assert (status.enabled, status.level, status.locked, status.days) == (True, "bucket", True, 5)
    store.write("a.csv", [b"1"])
    store.write("big.bin", [BIG])
    held = store.object_retention("a.csv")
    assert held.mode == "COMPLIANCE" and 4.9 < held.days_left() <= 5
    with pytest.raises(RetentionLockedError, match="FileImmutable"):
        store.delete("a.csv")
    with pytest.raises(RetentionLockedError, match="FileImmutable"):
        store.write("a.csv", [b"2"])
    with pytest.raises(RetentionLockedError, match="FileImmutable"):
        store.write("big.bin", [BIG[:-1] + b"x"])
    import oss2

    with pytest.raises(oss2.exceptions.OssError) as refused:
        store.client.batch_delete_objects(["a.csv", "big.bin"])
    assert refused.value.code == "FileImmutable"
    with pytest.raises(oss2.exceptions.OssError) as locked:
        store.client.abort_bucket_worm()
    assert locked.value.status == 409
    store.client.extend_bucket_worm(store.client.get_bucket_worm().worm_id, 9)
    assert store.client.get_bucket_worm().retention_period_days == 9
    assert b"".join(store.read("a.csv")) == b"1"


def test_oss_without_worm_reports_what_to_enable(oss_service: Any) -> None:
    store = oss_service.store(oss_service.create_bucket())
    status = store.retention_status()
    assert not status.enabled and "InitiateBucketWorm" in status.remedy
    pending = oss_service.store(oss_service.create_bucket())
    pending.client.init_bucket_worm(2)
    assert pending.retention_status().enabled and not pending.retention_status().locked
    pending.client.abort_bucket_worm()  # an unlocked policy can still be removed, as on OSS
    assert not pending.retention_status().enabled


def test_s3_object_lock_on_single_and_multipart_uploads(s3_service: Any) -> None:
    store = locked_s3(s3_service)
    status = store.retention_status()
    assert status.enabled and status.versioned
    policy = _policy(mode=RetentionMode.GOVERNANCE)
    store.retention = policy
    store.write("small", [b"s"])
    store.write("big.bin", [BIG])
    client = s3_service.client()
    for key in ("small", "big.bin"):
        held = store.object_retention(key)
        assert held.mode == "GOVERNANCE" and held.until == policy.until
        version = client.head_object(Bucket=store.bucket, Key=key)["VersionId"]
        with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
            client.delete_object(Bucket=store.bucket, Key=key, VersionId=version)
    plain = s3_service.store(s3_service.create_bucket())
    assert not plain.retention_status().enabled
