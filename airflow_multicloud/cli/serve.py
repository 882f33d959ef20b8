"""``multicloud serve-local``: the local stand-ins for S3, COS and OSS, with the Airflow connections to use them."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from airflow_multicloud.cli.testbed import require_testbed
from airflow_multicloud.schemes import SCHEMES


def start_services(
    only: list[str] | None = None, ports: dict[str, int] | None = None, data_dir: str | None = None
) -> dict[str, Any]:
    """Start the chosen services (all three by default) in this process and return them by name."""
    ports = ports or {}
    started: dict[str, Any] = {}
    for name in only or ["s3", "cos", "oss"]:
        if name == "s3":
            from multicloud_testbed.s3_server import S3Service

            started[name] = S3Service(port=ports.get(name, 0)).start()
            continue
        root = str(Path(data_dir) / name) if data_dir else None
        if name == "cos":
            from multicloud_testbed.cos_server import CosService

            started[name] = CosService(root=root, port=ports.get(name, 0)).start()
        else:
            from multicloud_testbed.oss_server import OssService

            started[name] = OssService(root=root, port=ports.get(name, 0)).start()
    return started


CONN_IDS = {name: SCHEMES[name].default_conn_id for name in ("s3", "cos", "oss")}


def connection_env(services: Mapping[str, Any], names: Iterable[str] = CONN_IDS) -> dict[str, str]:
    """``AIRFLOW_CONN_AWS_DEFAULT`` / ``COS_DEFAULT`` / ``OSS_DEFAULT`` (JSON) for running local servers."""
    return {f"AIRFLOW_CONN_{CONN_IDS[n].upper()}": json.dumps(services[n].connection(CONN_IDS[n])) for n in names}


def connection_exports(services: dict[str, Any]) -> list[str]:
    """``export AIRFLOW_CONN_...='{json}'`` lines for each running service."""
    return [f"export {name}='{value}'" for name, value in connection_env(services, list(services)).items()]


def serve_local(args: argparse.Namespace) -> int:
    require_testbed("serve-local")
    ports = {"s3": args.s3_port, "cos": args.cos_port, "oss": args.oss_port}
    services = start_services(args.only, ports, args.data_dir)
    for name, svc in services.items():
        for bucket in args.bucket:
            svc.create_bucket(bucket if name != "cos" or bucket[-1].isdigit() else f"{bucket}-1250000000")
        print(f"{name}: {svc.endpoint}", flush=True)
    print("\n# Airflow connections for these servers:", flush=True)
    for line in connection_exports(services):
        print(line, flush=True)
    print("\n# Ctrl-C (or SIGTERM) stops the servers.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    for svc in services.values():
        svc.stop()
    return 0
