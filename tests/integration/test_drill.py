"""Restore drill: the restored bytes are proven against that night's manifest, not against the replica as it is now.

A real replication run (the SDKs against the local S3, COS and OSS servers) writes the replica and its manifest,
the validation operator writes that night's report with the source's rows; then the replica is changed the way a
user's mistake would change it, through the store.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from airflow_multicloud.replication.engine import ReplicationOptions, replicate
from airflow_multicloud.replication.model import Location
from airflow_multicloud.stores.base import MiB, TransferConfig
from airflow_multicloud.validation.drill import restore_drill

CSV = b'id,name,note\n1,alpha,"multi\nline"\n2,beta,plain\n3,gamma,"with, comma"\n'
SMALL = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB, max_concurrency=2)


def bucket(services: dict[str, Any], name: str, transfer: TransferConfig = SMALL) -> Location:
    svc = services[name]
    return Location(svc.store(svc.create_bucket(), transfer=transfer), "flights/date=2013-01-05/")


def night(services: dict[str, Any], replica_kind: str = "cos") -> tuple[Location, Location, dict[str, bytes]]:
    """One night: the partition copied to the replica, then validated with row counts (the report is kept)."""
    from airflow_multicloud.operators.validate import ValidateReplicaOperator

    files = {
        "part-0.csv": CSV,
        "part-1.jsonl": b'{"id": 1}\n{"id": 2}\n',
        "big.bin": os.urandom(6 * MiB + 3),  # one PUT at the source (an MD5 ETag), multipart in the replica
        "_SUCCESS": b"",
    }
    source = bucket(services, "s3", TransferConfig(multipart_threshold=64 * MiB))
    for rel, data in files.items():
        source.store.write(source.key(rel), [data])
    replica = bucket(services, replica_kind)
    replicate(source, [replica], ReplicationOptions(progress_interval=0))
    op = ValidateReplicaOperator(task_id="validate", source=source.uri, replicas=[replica.uri], count_rows=True)
    op._locations = lambda: (source, [replica])  # type: ignore[method-assign]  # the stores above, no connections
    events: dict[Any, Any] = {op.outlets[0]: type("Event", (), {"extra": {}})()}
    op.execute({"dag": type("D", (), {"dag_id": "nightly"})(), "run_id": "r1", "outlet_events": events})  # type: ignore[arg-type]
    return source, replica, files


def test_drill_restores_and_proves_every_object(clean_services: dict[str, Any]) -> None:
    _, replica, files = night(clean_services)
    scratch = bucket(clean_services, "oss")
    drill = restore_drill(replica, scratch, count_rows=True)
    assert drill.ok, drill.summary()
    assert (drill.objects, drill.bytes, drill.recorded) == (4, sum(map(len, files.values())), 4)
    assert drill.rows == 3 + 2
    for rel, data in files.items():
        assert b"".join(scratch.store.read(scratch.key(rel))) == data
    xcom = drill.to_json()
    assert xcom["restore_s"] > 0 and xcom["bytes_per_s"] > 0 and xcom["failures"] == []
    assert "files" not in xcom and len(str(xcom)) < 2000, "XCom holds totals, not one line per object"


def test_replica_overwritten_since_fails_the_drill_naming_the_keys(clean_services: dict[str, Any]) -> None:
    _, replica, files = night(clean_services)
    other = bytearray(files["part-0.csv"])
    other[5:10] = b"XXXXX"
    replica.store.write(replica.key("part-0.csv"), [bytes(other)])  # same size, other bytes
    big = bytearray(files["big.bin"])
    big[MiB] ^= 0xFF
    replica.store.write(replica.key("big.bin"), [bytes(big)])
    replica.store.delete(replica.key("part-1.jsonl"))
    replica.store.write(replica.key("late.csv"), [b"id\n1\n"])

    drill = restore_drill(replica, bucket(clean_services, "s3"), count_rows=True)
    assert not drill.ok
    assert {(d.key, d.kind) for d in drill.failures} == {
        ("big.bin", "checksum"),
        ("part-0.csv", "checksum"),
        ("part-1.jsonl", "missing"),
        ("late.csv", "extra"),
    }
    changed = next(d for d in drill.failures if d.key == "part-0.csv")
    assert changed.source != changed.replica and str(changed.source).startswith("crc64 ")
    assert "part-0.csv: checksum" in drill.summary()


def test_operator_fails_naming_the_keys_and_returns_the_time_to_restore(
    clean_services: dict[str, Any], airflow_connections: dict[str, str]
) -> None:
    from airflow_multicloud.operators.validate import ReplicaMismatchError, RestoreDrillOperator

    _, replica, files = night(clean_services)
    scratch = bucket(clean_services, "s3")
    op = RestoreDrillOperator(task_id="drill", replica=replica.uri, scratch=scratch.uri, count_rows=True)
    result = op.execute({})  # type: ignore[arg-type]
    assert (result["ok"], result["objects"], result["rows"]) == (True, 4, 5)
    assert {"restore_s", "bytes_per_s"} <= result.keys()

    replica.store.write(replica.key("part-1.jsonl"), [files["part-1.jsonl"].replace(b"1", b"7")])
    with pytest.raises(ReplicaMismatchError, match=r"1 object\(s\) do not match .*\n  part-1\.jsonl: checksum"):
        op.execute({})  # type: ignore[arg-type]


def test_rows_are_proven_against_the_rows_recorded_that_night(clean_services: dict[str, Any]) -> None:
    _, replica, _ = night(clean_services, "oss")
    reports = [i.key for i in replica.store.list(replica.key("_multicloud/reports/")) if i.key.endswith(".json")]
    (name,) = reports
    saved = b"".join(replica.store.read(name)).replace(b'"source_rows": 3', b'"source_rows": 4')
    replica.store.write(name, [saved])  # that night the source's CSV had 4 rows: the replica lost one since

    drill = restore_drill(replica, bucket(clean_services, "cos"), count_rows=True)
    assert [(d.key, d.kind, d.source, d.replica) for d in drill.failures] == [("part-0.csv", "rows", 4, 3)]


def test_replica_without_manifest_is_refused_by_name(clean_services: dict[str, Any]) -> None:
    replica = bucket(clean_services, "cos")
    replica.store.write(replica.key("part-0.csv"), [CSV])
    with pytest.raises(ValueError, match=r"no manifest .* under cos://.*/_multicloud/manifests/"):
        restore_drill(replica, bucket(clean_services, "s3"))
