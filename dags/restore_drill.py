"""Restore drill: copy one day's replica back to a scratch location and prove it matches that day's manifest.

Trigger it with ``{"partition": "2013-01-02"}`` (or let it pick yesterday). A backup counts only once it has
been restored: this copies the replica to ``scratch``, then validates the restored copy at full level (every
byte re-read) against the replica, whose manifest records the checksums verified at copy time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from airflow.sdk import DAG, Param

from airflow_multicloud.operators.replicate import ReplicateDatasetOperator
from airflow_multicloud.operators.validate import ValidateReplicaOperator

REPLICA = os.environ.get("MULTICLOUD_DRILL_REPLICA", "cos://replica-1250000000/nycflights13/flights/")
SCRATCH = os.environ.get("MULTICLOUD_DRILL_SCRATCH", "s3://restore-drill/nycflights13/flights/")
DAY = "date={{ params.partition or macros.ds_add(dag_run.run_after | ds, -1) }}/"

with DAG(
    dag_id="restore_drill",
    schedule=None,
    start_date=datetime(2013, 1, 1, tzinfo=UTC),
    catchup=False,
    params={"partition": Param(None, type=["null", "string"], format="date", description="day to restore")},
    tags=["multicloud", "drill"],
    doc_md=__doc__,
) as dag:
    restore = ReplicateDatasetOperator(
        task_id="restore_to_scratch", source=REPLICA + DAY, destinations=[SCRATCH + DAY], outlets=[]
    )
    prove = ValidateReplicaOperator(
        task_id="prove_restore",
        source=REPLICA + DAY,
        replicas=[SCRATCH + DAY],
        level="full",
        count_rows=True,
        outlets=[],
    )
    restore >> prove
