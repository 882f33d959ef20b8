"""Templates and XComArgs in URI fields, end to end: a DAG whose source bucket is an Airflow Variable and whose
second destination is an upstream task's output runs through dag.test() against the local clouds, and the
OpenLineage events it emits (file transport, as a real deployment would configure it) name the same datasets as
its assets, with the partition in a ``subset`` facet, on success and on failure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_multicloud.cli.serve import connection_env
from multicloud_testbed.dag_runner import airflow_env, migrate, run_dag

DAG_ID = "templated_replication"
DAG_FILE = """
import os

from airflow.sdk import DAG, Asset, task

from airflow_multicloud.operators.replicate import ReplicateDatasetOperator
from airflow_multicloud.operators.validate import ValidateReplicaOperator

SOURCE = "s3://{{ var.value.raw_bucket }}/sales/date={{ ds }}/"
COS = "cos://" + os.environ["TEST_COS_BUCKET"] + "/sales/date={{ ds }}/"
OSS_DATASET = "oss://" + os.environ["TEST_OSS_BUCKET"] + "/sales/"

with DAG("templated_replication", schedule=None) as dag:

    @task
    def pick_destination(ds=None):
        return OSS_DATASET + f"date={ds}/"

    dest = pick_destination()
    rep = ReplicateDatasetOperator(
        task_id="replicate", source=SOURCE, destinations=[COS, dest], object_retries=0, retries=0
    )
    ValidateReplicaOperator(
        task_id="validate",
        source=SOURCE,
        replicas=[COS, dest],
        replication=rep.output,
        outlets=[Asset(OSS_DATASET)],
    )
"""


@pytest.fixture(scope="module")
def dag_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("templated")
    (root / "dags").mkdir()
    (root / "dags" / "templated.py").write_text(DAG_FILE)
    env = airflow_env(root / "home", root / "dags")
    migrate(env)
    return {**env, "DAG_FILE": str(root / "dags" / "templated.py")}


@pytest.fixture
def clouds(clean_services: dict[str, Any], tmp_path: Path) -> Iterator[dict[str, Any]]:
    s3, cos, oss = clean_services["s3"], clean_services["cos"], clean_services["oss"]
    raw, cb, ob = s3.create_bucket(), cos.create_bucket(), oss.create_bucket()
    for day in ("2013-01-02", "2013-01-03"):
        s3.store(raw).write(f"sales/date={day}/a.csv", [b"id,amount\n1,10\n2,20\n"])
        s3.store(raw).write(f"sales/date={day}/b.csv", [b"id,amount\n3,30\n"])
    events = tmp_path / "openlineage.jsonl"
    env = {
        **connection_env(clean_services),
        "AIRFLOW_VAR_RAW_BUCKET": raw,
        "TEST_COS_BUCKET": cb,
        "TEST_OSS_BUCKET": ob,
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "multicloud-test",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events), "append": True}),
    }
    yield {"env": env, "raw": raw, "cos": cb, "oss": ob, "events": events, "services": clean_services}


def _events(path: Path, task: str) -> dict[str, dict[str, Any]]:
    """The last event of each type (START, COMPLETE, FAIL) OpenLineage emitted for ``task``."""
    out: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event["job"]["name"] == f"{DAG_ID}.{task}":
            out[event["eventType"]] = event
    return out


def _names(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def _subset(dataset: dict[str, Any], output: bool) -> list[str] | None:
    facets = dataset.get("outputFacets" if output else "inputFacets", {})
    subset = facets.get("subset")
    if subset is None:
        return None
    condition = subset["outputCondition" if output else "inputCondition"]
    assert condition["type"] == "location"
    return list(condition["locations"])


def test_templated_bucket_and_xcomarg_destination_replicate_and_emit_matching_lineage(
    dag_env: dict[str, str], clouds: dict[str, Any]
) -> None:
    from airflow_multicloud.assets.cos import convert_asset_to_openlineage

    raw, cb, ob = clouds["raw"], clouds["cos"], clouds["oss"]
    out = run_dag(
        dag_env, dag_env["DAG_FILE"], DAG_ID, logical_date="2013-01-02T00:00:00+00:00", extra_env=clouds["env"]
    )
    assert out["state"] == "success", out["log"][-4000:]
    summary = out["xcom"]["replicate"]
    assert summary["source"] == f"s3://{raw}/sales/date=2013-01-02/", "the Variable was rendered into the bucket"
    assert summary["destinations"] == [f"cos://{cb}/sales/date=2013-01-02/", f"oss://{ob}/sales/date=2013-01-02/"]
    assert (summary["objects"], summary["copied"], summary["failed"]) == (2, 4, 0)

    # assets: the stable part of the COS template (derived), the OSS dataset given as an outlet (the XComArg has
    # none of its own); the partitions are in the extras, not in the asset names
    by_task: dict[str, set[str]] = {}
    for e in out["asset_events"]:
        by_task.setdefault(e["extra"].get("replica") or e["extra"]["destination"], set()).add(e["uri"])
    assert by_task == {
        f"cos://{cb}/sales/date=2013-01-02/": {f"cos://{cb}/sales"},
        f"oss://{ob}/sales/date=2013-01-02/": {f"oss://{ob}/sales"},
    }

    events = _events(clouds["events"], "replicate")
    assert set(events) == {"START", "COMPLETE"}
    complete = events["COMPLETE"]
    cos_name = (f"cos://{cb}", "sales")
    assert _names(complete["inputs"]) == [(f"s3://{raw}", "sales/date=2013-01-02")]
    assert _names(complete["outputs"]) == [cos_name, (f"oss://{ob}", "sales/date=2013-01-02")]
    assert _names(events["START"]["outputs"]) == _names(complete["outputs"]), "START names what COMPLETE names"
    # the output dataset is the asset, named as the registered asset converter names it
    from airflow.sdk import Asset

    asset_ol = convert_asset_to_openlineage(Asset(f"cos://{cb}/sales/"), None)
    assert (asset_ol.namespace, asset_ol.name) == cos_name
    cos_out, oss_out = complete["outputs"]
    assert _subset(cos_out, output=True) == [f"cos://{cb}/sales/date=2013-01-02/"]
    assert _subset(oss_out, output=True) is None, "an XComArg destination is its own dataset"
    assert cos_out["outputFacets"]["outputStatistics"]["fileCount"] == 2
    assert cos_out["outputFacets"]["outputStatistics"]["size"] == sum(
        len(b) for b in (b"id,amount\n1,10\n2,20\n", b"id,amount\n3,30\n")
    )
    run_facet = complete["run"]["facets"]["multicloud_replication"]
    assert (run_facet["objects"], run_facet["copied"], run_facet["failed"], run_facet["verified"]) == (2, 4, 0, True)
    assert len(run_facet["manifests"]) == 2

    validate = _events(clouds["events"], "validate")["COMPLETE"]
    assert _names(validate["inputs"])[1] == cos_name, "validation names the replica as the replication does"
    assert validate["inputs"][1]["inputFacets"]["dataQualityMetrics"]["fileCount"] == 2


def test_a_failed_replication_emits_a_fail_event_with_the_failed_keys(
    dag_env: dict[str, str], clouds: dict[str, Any]
) -> None:
    ob = clouds["oss"]
    clouds["services"]["oss"].faults.add("status", operation="PutObject", key="*b.csv", status=403, code="AccessDenied")
    out = run_dag(
        dag_env, dag_env["DAG_FILE"], DAG_ID, logical_date="2013-01-03T00:00:00+00:00", extra_env=clouds["env"]
    )
    assert out["tasks"]["replicate"] == "failed", out["log"][-4000:]

    events = _events(clouds["events"], "replicate")
    assert "COMPLETE" not in events
    fail = events["FAIL"]
    assert _names(fail["outputs"]) == [(f"cos://{clouds['cos']}", "sales"), (f"oss://{ob}", "sales/date=2013-01-03")]
    run_facet = fail["run"]["facets"]["multicloud_replication"]
    assert run_facet["verified"] is False and run_facet["failed"] == 1
    (failed,) = run_facet["failed_keys"]
    assert failed.startswith(f"oss://{ob}/sales/date=2013-01-03/b.csv (") and "AccessDenied" in failed
    # what each destination received before the failure
    stats = [o["outputFacets"]["outputStatistics"]["fileCount"] for o in fail["outputs"]]
    assert stats == [2, 1]
