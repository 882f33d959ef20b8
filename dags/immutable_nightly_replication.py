"""Immutable nightly replication: each day's partition copied to write-once replicas on other clouds.

The replicas are what is left when an operator error wipes the source and its same-cloud backups, so they are
written under retention: S3 Object Lock and COS object lock keep every replica for ``RETENTION_DAYS`` (COMPLIANCE:
nobody can shorten it), an OSS bucket's locked WORM policy does the same bucket-wide. ``require_immutable`` stops
the run before it copies anything when a destination cannot hold that (the error names the bucket and what to
enable); ``max_cost`` stops it when the estimated egress and requests are above the budget. The validate task
then checks, object by object, that every replica is retained as long as asked.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_multicloud.operators.replicate import ReplicateDatasetOperator
from airflow_multicloud.operators.validate import ValidateReplicaOperator
from airflow_multicloud.partitions import MACROS, PARTITION_TEMPLATE

SOURCE = os.environ.get("MULTICLOUD_IMMUTABLE_SOURCE", "s3://raw-data/nycflights13/flights/")
DESTINATIONS = os.environ.get(
    "MULTICLOUD_IMMUTABLE_DESTINATIONS",
    "cos://vault-1250000000/nycflights13/flights/,oss://vault/nycflights13/flights/",
).split(",")
RETENTION_DAYS = int(os.environ.get("MULTICLOUD_IMMUTABLE_RETENTION_DAYS", "30"))
MAX_COST = float(os.environ.get("MULTICLOUD_IMMUTABLE_MAX_COST", "50"))
PARTITION = f"date={PARTITION_TEMPLATE}/"

with DAG(
    dag_id="immutable_nightly_replication",
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone="UTC"),
    start_date=datetime(2013, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    user_defined_macros=MACROS,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["multicloud", "immutable"],
    doc_md=__doc__,
) as dag:
    replicate = ReplicateDatasetOperator(
        task_id="replicate",
        source=SOURCE + PARTITION,
        destinations=[d + PARTITION for d in DESTINATIONS],
        overwrite="if_changed",  # a locked replica is reported as a conflict (or gets a new version), never lost
        retention=RETENTION_DAYS,
        retention_mode="COMPLIANCE",
        require_immutable=True,
        max_cost=MAX_COST,
    )
    validate = ValidateReplicaOperator(
        task_id="validate",
        source=SOURCE + PARTITION,
        replicas=[d + PARTITION for d in DESTINATIONS],
        level="quick",
        retention=RETENTION_DAYS,
        replication=replicate.output,
        outlets=[],  # the replicate task's asset events carry the retention and the cost
    )
    replicate >> validate
