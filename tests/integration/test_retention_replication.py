"""Replicas that survive us: a run with ``retention`` writes locked replicas on S3, COS and OSS; a mirror of a wiped
source, a careless overwrite and a lifecycle-like sweep leave them in place; ``require_immutable`` refuses a
destination that cannot hold the lock; the cost estimate matches the requests the servers log for the same run."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_multicloud.replication.cost import BudgetExceededError
from airflow_multicloud.replication.engine import ReplicationOptions, replicate
from airflow_multicloud.replication.model import Location
from airflow_multicloud.replication.retention import RetentionUnavailableError, parse_retention
from airflow_multicloud.stores.base import MiB, TransferConfig
from airflow_multicloud.stores.local import LocalStore
from tests.integration.test_retention_locks import locked_cos, locked_oss, locked_s3

T = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB)
FILES = {f"day=1/part-{i}.csv": f"id,v\n{i},{i * i}\n".encode() for i in range(6)}


@pytest.fixture
def clouds(s3_service: Any, cos_service: Any, oss_service: Any) -> dict[str, Any]:
    return {"s3": s3_service, "cos": cos_service, "oss": oss_service}


def _source(clouds: dict[str, Any], big: bool = False) -> Location:
    store = clouds["s3"].store(clouds["s3"].create_bucket(), transfer=T)
    for key, data in FILES.items():
        store.write("in/" + key, [data])
    if big:
        store.write("in/day=1/big.bin", [b"b" * (11 * MiB)])
    return Location(store, "in/")


def _locked_destinations(clouds: dict[str, Any]) -> list[Location]:
    stores = [locked_cos(clouds["cos"]), locked_oss(clouds["oss"], days=5), locked_s3(clouds["s3"])]
    for store in stores:
        store.transfer = T
    return [Location(s, "replica/") for s in stores]


def test_locked_replicas_survive_a_mirror_of_a_wiped_source(clouds: dict[str, Any]) -> None:
    source, dests = _source(clouds), _locked_destinations(clouds)
    first = replicate(source, dests, ReplicationOptions(retention=3, require_immutable=True))
    assert first.copied == 3 * len(FILES) and first.failed == 0
    by_dest = {r["destination"]: r for r in first.retention}
    assert all(r["object_lock"] for r in by_dest.values())
    assert "nobody" in by_dest[dests[0].uri]["who_can_delete"]
    assert "WORM" in by_dest[dests[1].uri]["who_can_delete"]
    for key in FILES:
        source.store.delete(source.key(key))  # the operator error: the source is wiped
    wiped = replicate(source, dests, ReplicationOptions(mode="mirror", max_delete=100, allow_empty=True))
    assert wiped.deleted == 0 and wiped.locked == 3 * len(FILES)
    for dest in dests:
        assert sorted(o.key for o in dest.store.list("replica/day=1/")) == sorted("replica/" + k for k in FILES)


def test_overwrite_of_a_locked_replica_is_a_conflict_or_a_new_version(clouds: dict[str, Any]) -> None:
    source, dests = _source(clouds), _locked_destinations(clouds)
    replicate(source, dests, ReplicationOptions(retention=3))
    changed = "day=1/part-0.csv"
    source.store.write(source.key(changed), [b"id,v\n0,changed\n"])
    again = replicate(source, dests, ReplicationOptions(retention=3))  # if_changed: would overwrite
    assert again.failed == 0
    assert again.locked == 2  # COS object lock and OSS WORM refused; S3 wrote a new version
    assert {k.split("/")[2] for k in again.conflict_keys} == {dests[0].store.bucket, dests[1].store.bucket}
    for dest in dests[:2]:
        assert b"".join(dest.store.read(dest.key(changed))) == FILES[changed]
    s3 = dests[2].store
    assert b"".join(s3.read(dests[2].key(changed))) == b"id,v\n0,changed\n"
    versions = s3.client.list_object_versions(Bucket=s3.bucket, Prefix=dests[2].key(changed))["Versions"]
    assert len(versions) == 2  # the first replica is still there, and still locked


def test_require_immutable_refuses_naming_the_bucket_and_what_to_enable(clouds: dict[str, Any]) -> None:
    source = _source(clouds)
    plain_oss = clouds["oss"].store(clouds["oss"].create_bucket())
    plain_s3 = clouds["s3"].store(clouds["s3"].create_bucket())
    dests = [Location(locked_cos(clouds["cos"]), ""), Location(plain_oss, ""), Location(plain_s3, "")]
    with pytest.raises(RetentionUnavailableError) as refused:
        replicate(source, dests, ReplicationOptions(retention=7, require_immutable=True))
    text = str(refused.value)
    assert f"oss://{plain_oss.bucket}/" in text and "InitiateBucketWorm" in text
    assert f"s3://{plain_s3.bucket}/" in text and "Object Lock" in text
    assert f"cos://{dests[0].store.bucket}" not in text
    assert not list(dests[0].store.list()) and not list(plain_oss.list())
    short = locked_oss(clouds["oss"], days=2)
    with pytest.raises(RetentionUnavailableError, match="keeps 2 days"):
        replicate(source, [Location(short, "")], ReplicationOptions(retention=30, require_immutable=True))


def test_retention_accepts_days_or_a_date_and_names_bad_input() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_retention(30, now=now).until == datetime(2026, 12, 31, tzinfo=UTC)  # type: ignore[union-attr]
    assert parse_retention("2027-06-30", "governance", now=now).mode == "GOVERNANCE"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="retention='next year'"):
        parse_retention("next year", now=now)
    with pytest.raises(ValueError, match="not in the future"):
        parse_retention("2026-01-01", now=now)
    with pytest.raises(ValueError, match="retention_mode"):
        parse_retention(3, "forever", now=now)


def _logged(svc: Any) -> Counter[str]:
    time.sleep(0.2)  # the servers log a request as they finish answering it
    return Counter(r.operation for r in svc.requests)


def test_cost_estimate_matches_the_requests_the_servers_log(clouds: dict[str, Any]) -> None:
    source = _source(clouds, big=True)
    dests = _locked_destinations(clouds)[:2]  # COS and OSS: each server logs one side only
    for svc in clouds.values():
        svc.clear_log()
    summary = replicate(source, dests, ReplicationOptions(retention=3))
    cost = summary.cost
    logged = {name: _logged(clouds[name]) for name in ("s3", "cos", "oss")}
    sides = [("s3", cost["requests"]["source"]), ("cos", cost["pairs"][0]["requests"])]
    sides.append(("oss", cost["pairs"][1]["requests"]))
    for name, estimated in sides:
        got, want = sum(logged[name].values()), sum(estimated.values())
        assert abs(want - got) <= 0.05 * got, (name, estimated, logged[name])
    assert cost["egress_bytes"] == sum(len(v) for v in FILES.values()) + 11 * MiB
    assert cost["total_cost"] > 0 and cost["pricing_as_of"]


def test_max_cost_refuses_a_run_above_the_budget(clouds: dict[str, Any]) -> None:
    source = _source(clouds)
    dest = clouds["cos"].store(clouds["cos"].create_bucket())
    with pytest.raises(BudgetExceededError, match="above max_cost=1e-06"):
        replicate(source, [Location(dest, "")], ReplicationOptions(max_cost=0.000001))
    assert not list(dest.list())
    dry = replicate(source, [Location(dest, "")], ReplicationOptions(dry_run=True))
    assert dry.cost["pairs"][0]["objects"] == len(FILES) and not list(dest.list())


def test_cli_dry_run_prints_who_can_delete_and_the_cost(
    clouds: dict[str, Any], airflow_connections: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_multicloud.cli.main import main as cli

    source = _source(clouds)
    locked = locked_oss(clouds["oss"], days=10)
    plain = clouds["cos"].store(clouds["cos"].create_bucket())
    args = ["replicate", source.uri, locked.uri(), plain.uri(), "--dry-run", "--retention", "7"]
    assert cli([*args, "--progress-interval", "0"]) == 0
    out = capsys.readouterr().out
    assert f"{locked.uri()}: deletable by nobody for 10 days" in out
    assert f"{plain.uri()}: deletable by anyone" in out
    assert "estimated cost:" in out and f"-> {plain.uri()}: {len(FILES)} objects" in out
    assert not list(locked.list()) and not list(plain.list())
    assert cli([*args, "--require-immutable"]) == 2
    assert "enable object lock" in capsys.readouterr().err


def test_validation_reports_retention_per_object_and_flags_short_ones(clouds: dict[str, Any]) -> None:
    from airflow_multicloud.operators.validate import ValidateReplicaOperator
    from airflow_multicloud.replication.retention import RetentionShortError, audit_retention

    source, dests = _source(clouds), _locked_destinations(clouds)
    replicate(source, dests, ReplicationOptions(retention=3))
    cos_dest = dests[0]
    cos_dest.store.retention = None
    cos_dest.store.write(cos_dest.key("day=1/late.csv"), [b"written without retention"])
    check = ValidateReplicaOperator(task_id="v", source=source.uri, replicas=[d.uri for d in dests], retention=3)
    with pytest.raises(RetentionShortError) as short:
        check._audit_retention(dests)
    assert cos_dest.uri in str(short.value) and "late.csv" in str(short.value)
    assert dests[1].uri not in str(short.value) and dests[2].uri not in str(short.value)
    audits = {d.uri: audit_retention(d, parse_retention(30)) for d in dests}
    assert audits[dests[2].uri]["retained"] == len(FILES) and len(audits[dests[2].uri]["short"]) == len(FILES)
    assert 2.9 < audits[dests[2].uri]["min_days_left"] <= 3
    assert audits[cos_dest.uri]["unprotected"] == [cos_dest.key("day=1/late.csv")]
    ValidateReplicaOperator(task_id="v2", source=source.uri, replicas=[dests[1].uri], retention=3)._audit_retention(
        [dests[1]]
    )


def test_a_bucket_default_covers_the_retention_only_when_at_least_as_long_and_as_strict(
    clouds: dict[str, Any],
) -> None:
    """S3 object lock with a 60-day default: a COMPLIANCE default covers a 30-day COMPLIANCE run (nothing set per
    object), a GOVERNANCE default does not (privileged users could delete those replicas): the run then sets
    COMPLIANCE on each object, and the report (the plan's, the asset extras') names the mode the replicas are held
    in."""
    from airflow_multicloud.replication.retention import prepare_destinations

    policy = parse_retention(30, "COMPLIANCE")
    for default, covered in (("COMPLIANCE", True), ("GOVERNANCE", False)):
        store = locked_s3(clouds["s3"])
        store.client.put_object_lock_configuration(
            Bucket=store.bucket,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": default, "Days": 60}},
            },
        )
        [report] = prepare_destinations([Location(store, "replica/")], policy, require_immutable=True)
        assert store.retention is (None if covered else policy), default
        assert report["mode"] == "COMPLIANCE" and report["days"] == 60, report
        # either way the write carries a Content-MD5, as S3 demands in an Object Lock bucket, and lands locked
        store.write("replica/k", [b"x"])
        assert store.object_retention("replica/k").mode == (default if covered else "COMPLIANCE")


def test_a_run_into_a_bucket_with_default_retention_it_was_not_told_of(clouds: dict[str, Any], tmp_path: Any) -> None:
    """No ``retention=`` and so no look at the bucket's lock: S3 refuses the first upload without a Content-MD5
    into a bucket whose default retention applies (400 InvalidRequest); the store sends it again with one and
    every later upload carries it from the start (small objects by PutObject, large ones part by part)."""
    store = locked_s3(clouds["s3"])
    store.client.put_object_lock_configuration(
        Bucket=store.bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    src = tmp_path / "src"
    src.mkdir()
    files = {"a.csv": b"a,b\n1,2\n", "b.csv": b"x" * 1000, "big.bin": bytes(range(256)) * (24 * 4096)}  # 24 MiB
    for name, data in files.items():
        (src / name).write_bytes(data)
    clouds["s3"].clear_log()
    dest = Location(store, "replica/")
    summary = replicate(Location(LocalStore(str(src)), ""), [dest], ReplicationOptions(workers=1, large_workers=1))
    assert summary.failed == 0 and summary.copied == len(files), summary
    for name, data in files.items():
        assert b"".join(store.read(f"replica/{name}")) == data
        if name != "big.bin":  # moto gives a multipart upload no bucket default retention (S3 does)
            assert store.object_retention(f"replica/{name}").mode == "GOVERNANCE", name
    refused = [r for r in clouds["s3"].requests if r.status == 400]
    assert len(refused) == 1, [(r.operation, r.key, r.status) for r in refused]  # the first upload only
