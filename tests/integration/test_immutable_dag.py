"""The sample DAG ``immutable_nightly_replication`` end to end under Airflow (dag.test in a subprocess) against the
local clouds: locked replicas, asset events that say who can delete them and what the run cost, and a refusal
before any copy when a destination cannot hold the retention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow_multicloud.cli.serve import connection_env
from multicloud_testbed.fixtures import run_dag
from tests.integration.test_retention_locks import locked_cos, locked_oss

DAG_FILE = str(Path(__file__).resolve().parents[2] / "dags" / "immutable_nightly_replication.py")
DAY = "2013-01-02"


def test_immutable_nightly_replication_writes_locked_replicas(
    airflow_home: dict[str, str], clean_services: dict[str, Any], airflow_connections: dict[str, str]
) -> None:
    s3, cos, oss = clean_services["s3"], clean_services["cos"], clean_services["oss"]
    raw = s3.create_bucket()
    for name, data in (("part-0.csv", b"id,v\n1,2\n"), ("part-1.csv", b"id,v\n3,4\n")):
        s3.store(raw).write(f"flights/date={DAY}/{name}", [data])
    vault_cos, vault_oss = locked_cos(cos), locked_oss(oss, days=40)
    env = {
        **connection_env(clean_services),
        "MULTICLOUD_IMMUTABLE_SOURCE": f"s3://{raw}/flights/",
        "MULTICLOUD_IMMUTABLE_DESTINATIONS": f"cos://{vault_cos.bucket}/flights/,oss://{vault_oss.bucket}/flights/",
        "MULTICLOUD_IMMUTABLE_RETENTION_DAYS": "30",
    }
    run = run_dag(
        airflow_home, DAG_FILE, "immutable_nightly_replication", logical_date="2013-01-03T01:00:00+00:00", extra_env=env
    )
    assert run["state"] == "success", run["log"][-4000:]
    summary = run["xcom"]["replicate"]
    assert (summary["copied"], summary["failed"]) == (4, 0)
    assert summary["cost"]["pairs"][0]["objects"] == 2
    assert run["xcom"]["validate"]["retention"][0]["retained"] == 2
    extras = [e["extra"] for e in run["asset_events"]]
    assert len(extras) == 2
    for extra in extras:
        assert extra["retention"]["object_lock"] is True
        assert "nobody" in extra["retention"]["who_can_delete"]
        assert extra["estimated_cost"]["pricing_as_of"]
    held = vault_cos.object_retention(f"flights/date={DAY}/part-0.csv")
    assert held.mode == "COMPLIANCE" and 29 < held.days_left() <= 30

    unlocked = oss.create_bucket()
    env["MULTICLOUD_IMMUTABLE_DESTINATIONS"] = f"oss://{unlocked}/flights/"
    refused = run_dag(
        airflow_home, DAG_FILE, "immutable_nightly_replication", logical_date="2013-01-04T01:00:00+00:00", extra_env=env
    )
    assert refused["state"] == "failed"
    assert refused["tasks"]["replicate"] == "failed"  # at once: a refusal is not retried (retries=2 in the DAG)
    assert not list(oss.store(unlocked).list())
