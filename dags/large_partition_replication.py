"""A large partition planned once and copied by mapped tasks, so several workers share one day's data.

``plan`` lists both sides once, splits the copies into shards of about equal bytes and writes the plan once,
under the first destination's ``_multicloud/plans/``; XCom carries only a small reference per shard, so a
partition of a million objects costs no more XCom than one of ten. Each mapped ``copy`` task reads its shard's
entries from the plan and copies them; ``validate`` then checks the whole partition.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_multicloud.operators.replicate import PlanReplicationOperator, ReplicateDatasetOperator
from airflow_multicloud.operators.validate import ValidateReplicaOperator
from airflow_multicloud.partitions import MACROS, PARTITION_TEMPLATE

SOURCE = os.environ.get("MULTICLOUD_LARGE_SOURCE", "s3://raw-data/nycflights13/flights/")
DESTINATIONS = os.environ.get("MULTICLOUD_LARGE_DESTINATIONS", "oss://replica/large/flights/").split(",")
SHARDS = int(os.environ.get("MULTICLOUD_LARGE_SHARDS", "4"))
PARTITION = f"date={PARTITION_TEMPLATE}/"

with DAG(
    dag_id="large_partition_replication",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2013, 1, 1, tzinfo=UTC),
    catchup=False,
    user_defined_macros=MACROS,
    tags=["multicloud"],
    doc_md=__doc__,
) as dag:
    source = SOURCE + PARTITION
    destinations = [d + PARTITION for d in DESTINATIONS]
    plan = PlanReplicationOperator(task_id="plan", source=source, destinations=destinations, shards=SHARDS)
    copy = ReplicateDatasetOperator.partial(task_id="copy", source=source, destinations=destinations).expand(
        plan_shard=plan.output
    )
    validate = ValidateReplicaOperator(task_id="validate", source=source, replicas=destinations, level="quick")
    copy >> validate
