"""URI fields take literals, Jinja templates and XComArgs: what the DAG file fixes is checked when it is parsed,
the rest once Airflow rendered it, with the same messages; assets come from the stable part of each URI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_multicloud.errors import InvalidURIError
from airflow_multicloud.lineage.datasets import dataset_of, openlineage_names, stable_uri
from airflow_multicloud.operators.replicate import ReplicateDatasetOperator
from airflow_multicloud.operators.validate import ValidateReplicaOperator
from airflow_multicloud.sensors.partition import DatasetPartitionSensor


@pytest.mark.parametrize(
    ("uri", "stable"),
    [
        ("s3://raw/sales/", "s3://raw/sales/"),
        ("s3://raw/sales/date={{ ds }}/", "s3://raw/sales/"),
        ("s3a://raw/sales/{{ ds }}", "s3://raw/sales/"),
        ("cosn://bk-1250000000/x/{% if params.full %}all{% endif %}/", "cos://bk-1250000000/x/"),
        ("oss://bkt/sales-{{ ds_nodash }}/", "oss://bkt/"),
        ("file:///data/exports/{{ ds }}/", "file:///data/exports/"),
        ("s3://{{ var.value.raw_bucket }}/sales/", None),
        ("s3://raw-{{ env }}/sales/", None),
        ("{{ var.value.source_uri }}", None),
        ("file://{{ var.value.root }}/x/", None),
    ],
)
def test_the_stable_part_of_a_uri_is_its_dataset(uri: str, stable: str | None) -> None:
    assert stable_uri(uri) == stable


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("s4://{{ var.value.b }}/x/", r"source: 's4://\{\{ var.value.b \}\}/x/' has unknown scheme 's4'"),
        (
            "cos://bad_bucket/{{ ds }}/",
            r"source: 'cos://bad_bucket/\{\{ ds \}\}/': bucket 'bad_bucket' is not a valid cos",
        ),
        ("s3:///sales/{{ ds }}/", r"source: 's3:///sales/\{\{ ds \}\}/' names no bucket"),
        (5, r"source=5 is not a dataset URI: pass a string such as s3://bucket/prefix/, a Jinja template"),
    ],
)
def test_what_the_dag_file_fixes_is_checked_when_it_is_parsed(source: Any, message: str) -> None:
    with pytest.raises(InvalidURIError, match=message):
        ReplicateDatasetOperator(task_id="r", source=source, destinations=["s3://ok-bucket/x/"])


def test_templated_bucket_parses_and_derives_the_assets_it_can() -> None:
    op = ReplicateDatasetOperator(
        task_id="r",
        source="s3://{{ var.value.raw_bucket }}/sales/",
        destinations=["cos://bk-1250000000/sales/date={{ ds }}/", "oss://{{ var.value.b }}/sales/"],
    )
    assert op.inlets == []
    assert [a.uri for a in op.outlets] == ["cos://bk-1250000000/sales"]


def test_xcomarg_uris_parse_and_make_the_upstream_task_a_dependency() -> None:
    from airflow.sdk import DAG, task

    with DAG("xcom_uris", schedule=None):

        @task
        def find_source() -> str:
            return "s3://raw/sales/"

        @task
        def find_destinations() -> list[str]:
            return ["oss://bkt/sales/"]

        rep = ReplicateDatasetOperator(task_id="r", source=find_source(), destinations=find_destinations())
        val = ValidateReplicaOperator(task_id="v", source=find_source(), replicas=[find_destinations()])
        sensor = DatasetPartitionSensor(task_id="s", uri=find_source(), marker="_SUCCESS")
    assert rep.upstream_task_ids == {"find_source", "find_destinations"}
    assert len(val.upstream_task_ids) == 2 and len(sensor.upstream_task_ids) == 1
    assert rep.inlets == [] and rep.outlets == []


def _render(op: Any, **context: Any) -> None:
    op.render_template_fields(context)


def test_a_template_that_renders_to_a_bad_uri_fails_the_task_with_the_parse_time_message(tmp_path: Path) -> None:
    op = ReplicateDatasetOperator(
        task_id="r", source="s3://{{ var.value.raw_bucket }}/sales/", destinations=[f"file://{tmp_path}/out/"]
    )
    _render(op, var={"value": {"raw_bucket": ""}})
    assert op.source == "s3:///sales/"
    with pytest.raises(InvalidURIError, match=r"^source: 's3:///sales/' names no bucket: expected s3://bucket/prefix"):
        op._locations()
    assert not (tmp_path / "out").exists(), "nothing is opened or created before every URI checked"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"uri": "s3://raw/x/"}, r"destinations resolved to \{'uri': 's3://raw/x/'\} \(dict\), not a dataset URI"),
        (["s3://raw/x/", None], r"destinations resolved to None \(NoneType\), not a dataset URI"),
        (["s3://Raw/x/"], r"destinations: 's3://Raw/x/': bucket 'Raw' is not a valid s3 bucket name"),
    ],
)
def test_an_upstream_output_that_is_not_a_uri_fails_with_a_clear_message(value: Any, message: str) -> None:
    op = ReplicateDatasetOperator(task_id="r", source="s3://raw/x/", destinations=["s3://ok-bucket/x/"])
    op.destinations = value  # what Airflow puts there when it resolves an XComArg
    with pytest.raises(InvalidURIError, match=message):
        op._locations()


def test_the_sensor_checks_its_uri_at_parse_and_after_rendering() -> None:
    with pytest.raises(InvalidURIError, match=r"uri: 'gs://\{\{ var.value.b \}\}/x/' has unknown scheme 'gs'"):
        DatasetPartitionSensor(task_id="s", uri="gs://{{ var.value.b }}/x/", marker="_SUCCESS")
    sensor = DatasetPartitionSensor(task_id="s", uri="oss://{{ var.value.b }}/x/", marker="_SUCCESS")
    _render(sensor, var={"value": {"b": "Bad_Bucket"}})
    with pytest.raises(InvalidURIError, match=r"^uri: 'oss://Bad_Bucket/x/': bucket 'Bad_Bucket' is not a valid oss"):
        sensor.execute({})  # type: ignore[arg-type]


def test_assets_and_lineage_share_one_name_and_partitions_belong_to_their_dataset() -> None:
    from airflow.sdk import Asset

    from airflow_multicloud.assets.oss import convert_asset_to_openlineage

    asset = Asset(uri=stable_uri("oss://bkt/sales/date={{ ds }}/") or "")
    converted = convert_asset_to_openlineage(asset, None)
    partition = "oss://bkt/sales/date=2024-01-01/"
    assert (converted.namespace, converted.name) == openlineage_names(dataset_of(partition, [asset.uri]))
    assert dataset_of("oss://bkt/sales-copy/x/", ["oss://bkt/sales/"]) == "oss://bkt/sales-copy/x/"
