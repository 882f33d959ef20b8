"""Run one DAG through ``dag.test()`` in a fresh process and print its outcome as JSON (last line of stdout).

``python -m multicloud_testbed.dag_runner DAG_FILE DAG_ID [--logical-date ISO] [--conf JSON]``

For tests and for users checking their DAGs offline: the caller sets AIRFLOW_HOME (with a migrated metadata
DB), AIRFLOW__CORE__DAGS_FOLDER (which must contain DAG_FILE) and the AIRFLOW_CONN_* variables.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from multicloud_testbed import SAMPLE_DAGS


def airflow_env(home: str | os.PathLike[str], dags: str | os.PathLike[str] = SAMPLE_DAGS) -> dict[str, str]:
    """Environment for Airflow subprocesses with their own home, SQLite DB and dags folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{Path(home).resolve()}/airflow.db",
    )
    return env


def migrate(env: dict[str, str]) -> None:
    airflow = str(Path(sys.executable).with_name("airflow"))
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)


def run_dag(
    env: dict[str, str],
    dag_file: str,
    dag_id: str,
    *,
    logical_date: str | None = None,
    conf: dict[str, Any] | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run a DAG through ``dag.test()`` in a subprocess; return its outcome (states, XComs, asset events, log)."""
    cmd = [
        sys.executable,
        "-m",
        "multicloud_testbed.dag_runner",
        dag_file,
        dag_id,
        "--conf",
        json.dumps(conf or {}),
    ]
    if logical_date:
        cmd += ["--logical-date", logical_date]
    proc = subprocess.run(cmd, env={**env, **(extra_env or {})}, capture_output=True, text=True, timeout=600)
    # the outcome is the last JSON line: log lines can follow it (OpenLineage emits the DAG run's event at exit)
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"dag.test of {dag_id} failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["log"] = proc.stderr
    return result


def _outcome(dag_id: str, dr: Any) -> dict[str, Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = {
            ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state)
            for ti in dr.get_task_instances(session=session)
        }
        xcoms = {
            x.task_id + (f"[{x.map_index}]" if x.map_index >= 0 else ""): x.value
            for x in session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == dag_id, XComModel.run_id == dr.run_id, XComModel.key == "return_value"
                )
            )
        }
        events = [
            {"uri": uri, "extra": ev.extra}
            for ev, uri in session.execute(
                select(AssetEvent, AssetModel.uri)
                .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == dr.run_id)
            )
        ]
    return {"run_id": dr.run_id, "state": str(dr.state), "tasks": tis, "xcom": xcoms, "asset_events": events}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("dag_file")
    p.add_argument("dag_id")
    p.add_argument("--logical-date")
    p.add_argument("--conf", default="{}")
    args = p.parse_args(argv)
    namespace = runpy.run_path(args.dag_file)
    from airflow.sdk import DAG

    dags = [v for v in namespace.values() if isinstance(v, DAG) and v.dag_id == args.dag_id]
    if not dags:
        print(f"no DAG {args.dag_id!r} in {args.dag_file}", file=sys.stderr)
        return 2
    logical = datetime.fromisoformat(args.logical_date) if args.logical_date else None
    dr = dags[0].test(logical_date=logical, run_conf=json.loads(args.conf))
    print(json.dumps(_outcome(args.dag_id, dr), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
