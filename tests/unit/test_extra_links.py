"""Extra links: one per replica the DAG lists, serialized by name and XCom key, pointing at the manifest's (or the
report's) folder in the cloud's console once the task ran, and at nothing before."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_multicloud.operators.links import LinkKind
from airflow_multicloud.operators.replicate import PlanReplicationOperator, ReplicateDatasetOperator
from airflow_multicloud.operators.validate import ValidateReplicaOperator
from airflow_multicloud.replication.model import RunSummary

COS = "cos://backup-1250000000/sales/date={{ ds }}/"
OSS = "oss://replica-b/sales/date={{ ds }}/"


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_COS_EU",
        json.dumps(
            {"conn_type": "cos", "login": "AKIDx", "password": "s3cr3t-key", "extra": {"region": "eu-frankfurt"}}
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_OSS_DEFAULT",
        json.dumps(
            {
                "conn_type": "multicloud_oss",
                "login": "LTAIx",
                "password": "s3cr3t-key",
                "extra": {"region": "cn-shanghai"},
            }
        ),
    )


def _links(op: object) -> dict[str, object]:
    return {link.name: link for link in op.operator_extra_links}  # type: ignore[attr-defined]


def test_one_manifest_link_per_destination_and_none_on_a_plan() -> None:
    op = ReplicateDatasetOperator(task_id="r", source="s3://raw/sales/", destinations=[COS, OSS, "oss://other-b/x/"])
    assert list(_links(op)) == ["Manifest (cos)", "Manifest (oss) #2", "Manifest (oss) #3"]
    assert len({link.xcom_key for link in op.operator_extra_links}) == 3
    plan = PlanReplicationOperator(task_id="p", source="s3://raw/sales/", destinations=[COS])
    assert plan.operator_extra_links == []


def test_links_point_at_the_manifest_folder_in_each_console_after_the_run() -> None:
    op = ReplicateDatasetOperator(
        task_id="r", source="s3://raw/sales/", destinations=[COS, OSS], destination_conn_ids=["cos_eu", None]
    )
    links = op.operator_extra_links
    assert [link.get_link(op, ti_key=None) for link in links] == ["", ""], "no link before the task ran"
    cos_dest, oss_dest = "cos://backup-1250000000/sales/date=2024-01-01/", "oss://replica-b/sales/date=2024-01-01/"
    manifest = "_multicloud/manifests/20240102T000000Z-run.jsonl"
    op._summary = RunSummary(
        run_id="run",
        source="s3://raw/sales/",
        destinations=[cos_dest, oss_dest],
        manifests=[cos_dest + manifest, oss_dest + manifest],
    )
    cos_url, oss_url = (urlsplit(link.get_link(op, ti_key=None)) for link in links)
    assert cos_url.netloc == "console.cloud.tencent.com"
    assert parse_qs(cos_url.query) == {
        "bucket": ["backup-1250000000"],
        "region": ["eu-frankfurt"],
        "path": ["/sales/date=2024-01-01/_multicloud/manifests/"],
    }
    assert oss_url.netloc == "oss.console.aliyun.com" and oss_url.path == "/bucket/oss-cn-shanghai/replica-b/object"
    assert parse_qs(oss_url.query) == {"path": ["sales/date=2024-01-01/_multicloud/manifests/"]}
    assert "s3cr3t" not in cos_url.geturl() + oss_url.geturl()


def test_the_report_link_of_a_local_replica_is_the_html_file(tmp_path: object) -> None:
    from airflow_multicloud.validation.report import ReplicaReport, ValidationReport

    op = ValidateReplicaOperator(task_id="v", source="s3://raw/sales/", replicas=["file:///data/replica/"])
    (link,) = op.operator_extra_links
    assert link.name == "Validation report (file)"
    op._report = ValidationReport(
        source="s3://raw/sales/", level="quick", replicas=[ReplicaReport(uri="file:///data/replica/")]
    )
    op._report.replicas[0].reports = [
        "file:///data/replica/_multicloud/reports/x.json",
        "file:///data/replica/_multicloud/reports/x.html",
    ]
    assert link.get_link(op, ti_key=None) == "file:///data/replica/_multicloud/reports/x.html"
    assert op.replica_file(LinkKind.MANIFEST, 0) is None


def test_the_dag_serializes_each_link_by_name_and_xcom_key() -> None:
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    with DAG("links", schedule=None) as dag:
        ReplicateDatasetOperator(task_id="r", source="s3://raw/sales/", destinations=[COS, OSS])
    (task,) = DagSerialization.to_dict(dag)["dag"]["tasks"]
    assert task["__var"]["_operator_extra_links"] == {
        "Manifest (cos)": "_link_multicloud_manifest_0",
        "Manifest (oss)": "_link_multicloud_manifest_1",
    }
