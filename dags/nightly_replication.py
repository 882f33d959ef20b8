"""Nightly replication: each day's S3 partition copied to COS and OSS, verified, with lineage.

One run per day (CronDataIntervalTimetable): the run for the interval [D, D+1) copies partition ``date=D``, so a
backfill from the UI re-creates history day by day. Rerunning a day copies nothing that is already verified.
Settings come from environment variables so the same file serves the demo and real deployments.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_multicloud.operators.replicate import ReplicateDatasetOperator
from airflow_multicloud.operators.validate import ValidateReplicaOperator
from airflow_multicloud.partitions import MACROS, PARTITION_TEMPLATE
from airflow_multicloud.sensors.partition import DatasetPartitionSensor

SOURCE = os.environ.get("MULTICLOUD_NIGHTLY_SOURCE", "s3://raw-data/nycflights13/flights/")
DESTINATIONS = os.environ.get(
    "MULTICLOUD_NIGHTLY_DESTINATIONS",
    "cos://replica-1250000000/nycflights13/flights/,oss://replica/nycflights13/flights/",
).split(",")
PARTITION = f"date={PARTITION_TEMPLATE}/"

with DAG(
    dag_id="nightly_replication",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2013, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=3,
    user_defined_macros=MACROS,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["multicloud"],
    doc_md=__doc__,
) as dag:
    wait = DatasetPartitionSensor(
        task_id="wait_for_partition",
        uri=SOURCE + PARTITION,
        marker="_SUCCESS",
        mode="reschedule",
        poke_interval=60,
        timeout=6 * 3600,
    )
    replicate = ReplicateDatasetOperator(
        task_id="replicate",
        source=SOURCE + PARTITION,
        destinations=[d + PARTITION for d in DESTINATIONS],
        outlets=[],  # the validate task emits each replica's asset event, with the copy and its proof together
    )
    validate = ValidateReplicaOperator(
        task_id="validate",
        source=SOURCE + PARTITION,
        replicas=[d + PARTITION for d in DESTINATIONS],
        level="quick",
        count_rows=True,
        replication=replicate.output,
    )
    wait >> replicate >> validate
