"""Restore drill: copy one day's replica back to a scratch location and prove it against that day's manifest.

Trigger it with ``{"partition": "2013-01-02"}`` (or let it pick yesterday). A backup counts only once it has
been restored: this copies the replica to ``scratch`` and checks the CRC64 and size of every restored object
against the manifest the night's replication wrote (not against the replica as it is now, which may have been
overwritten since), and the rows of each data file against the rows that night's validation recorded. Its
XCom says how long the restore took.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from airflow.sdk import DAG, Param

from airflow_multicloud.operators.validate import RestoreDrillOperator

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
    RestoreDrillOperator(task_id="restore_and_prove", replica=REPLICA + DAY, scratch=SCRATCH + DAY, count_rows=True)
