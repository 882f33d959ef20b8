"""DatasetPartitionSensor in deferrable mode with a real triggerer: api-server, scheduler, dag-processor and triggerer
as subprocesses (SQLite metadata DB), the local S3 in this process. Two sensors, one with a connection from the
environment and one from the metadata DB, defer; both triggers look and see no marker; the marker appears; both
tasks succeed with the listing in XCom, and each trigger's log says what it found.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from multicloud_testbed.airflow_stack import AirflowStack
from tests.integration.test_sensors import Partition

pytestmark = pytest.mark.e2e

E2E_DAG = """
from airflow.sdk import DAG
from airflow_multicloud.sensors.partition import DatasetPartitionSensor
from multicloud_testbed.airflow_stack import AirflowStack

with DAG("partition_e2e", schedule=None, is_paused_upon_creation=False, catchup=False):
    for task_id, conn_id in (("env_conn", None), ("db_conn", "s3_in_db")):
        DatasetPartitionSensor(
            task_id=task_id, uri="{uri}", conn_id=conn_id, marker="_SUCCESS",
            deferrable=True, poke_interval=1, timeout=300,
        )
"""


def _db_rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # table not created yet, or a writer holds the lock: ask again
        return []


@pytest.mark.timeout(240)
def test_deferrable_sensor_with_a_real_triggerer(clean_services: Any, tmp_path: Path) -> None:
    s3 = clean_services["s3"]
    part = Partition(clean_services, "s3")
    part.put("a.csv", b"1,2\n")
    home, dags = tmp_path / "home", tmp_path / "dags"
    dags.mkdir()
    (dags / "partition_e2e.py").write_text(E2E_DAG.format(uri=part.uri))
    stack = AirflowStack(home, dags, extra_env={"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(s3.connection("aws_default"))})
    db = home / "airflow.db"
    try:
        stack.migrate()
        # one connection in the metadata DB: the triggerer must fetch it through its supervisor, not the env
        stack.cli("connections", "add", "s3_in_db", "--conn-json", json.dumps(s3.connection("s3_in_db")))
        stack.start()
        stack.wait_for(
            "the DAG to be serialized",
            lambda: _db_rows(db, "select 1 from serialized_dag where dag_id='partition_e2e'"),
            60,
        )
        stack.cli("dags", "trigger", "partition_e2e", "--run-id", "e2e")

        def states() -> dict[str, str]:
            sql = "select task_id, state from task_instance where dag_id='partition_e2e' and run_id='e2e'"
            return dict(_db_rows(db, sql))

        stack.wait_for("both sensors deferred", lambda: set(states().values()) == {"deferred"}, 90)
        assert _db_rows(db, "select count(*) from trigger")[0][0] == 2

        def trigger_logs() -> dict[str, str]:
            # Airflow 3.3 writes a trigger's log beside its task's log (attempt=N.log.trigger.<id>.log), not into
            # the triggerer's own output
            run_logs = home / "logs" / "dag_id=partition_e2e" / "run_id=e2e"
            return {p.parent.name: p.read_text(errors="replace") for p in run_logs.glob("task_id=*/*.log.trigger.*")}

        # the marker is written only once both triggers have looked and seen none: the wait is the triggerer's
        stack.wait_for(
            "both triggers to report 'no marker yet'",
            lambda: len([t for t in trigger_logs().values() if "no marker yet" in t]) == 2,
            60,
        )
        part.put("_SUCCESS", b"")
        stack.wait_for(
            "the run to succeed",
            lambda: _db_rows(db, "select 1 from dag_run where run_id='e2e' and state='success'"),
            60,
        )
        assert states() == {"env_conn": "success", "db_conn": "success"}
        xcoms = _db_rows(db, "select task_id, value from xcom where run_id='e2e' and key='return_value'")
        assert len(xcoms) == 2 and all('"a.csv"' in str(v) for _, v in xcoms), xcoms
        for task, log in trigger_logs().items():
            assert "DatasetPartitionTrigger" in log and f"{part.uri}_SUCCESS found" in log, (task, log)
            assert "Trigger fired event" in log and "'status': 'success'" in log, (task, log)
        assert "s3_in_db" in trigger_logs()["task_id=db_conn"]  # fetched in the triggerer from the metadata DB
    finally:
        stack.stop()  # raises if any process of the stack outlives it
