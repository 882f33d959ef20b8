"""``multicloud verify SRC DST [DST...]``: compare a dataset with its replicas outside Airflow.

Exit codes: 0 every replica matches, 1 some difference (or unverified objects, unless --allow-unverified),
2 bad input (unknown scheme, missing connection, bad flag, a replica that is the source), 3 the check could not
finish (service or network failure).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import TextIO

from airflow_multicloud import arguments
from airflow_multicloud.cli import options as opt
from airflow_multicloud.cli.console import Console
from airflow_multicloud.cli.outcome import Outcome, outcome_of, print_outcome
from airflow_multicloud.errors import InvalidArgumentError

log = logging.getLogger("airflow_multicloud.cli")


def add_verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="e.g. s3://bucket/sales/2024-01-01/")
    p.add_argument("destinations", nargs="+", help="the replicas, e.g. cos://backup-1250000000/sales/2024-01-01/")
    opt.add_connection_flags(p)
    p.add_argument(
        "--level",
        choices=["quick", "full"],
        default="quick",
        help="quick: listings, manifests and HEADs, no object data (default); full: re-read both sides",
    )
    p.add_argument("--rows", action="store_true", help="also count rows per data file on both sides")
    p.add_argument("--workers", type=int, default=8, help="objects checked at once (default 8)")
    p.add_argument("--allow-unverified", action="store_true", help="objects nothing could verify are not a failure")
    p.add_argument("--json", action="store_true", help="print the report (or the error) as JSON instead of a table")
    p.add_argument("--html", metavar="FILE", help="also write the report as a standalone HTML page")


def _html_target(path: str) -> str:
    """Refuse a report path that cannot be written before comparing anything (a full check can take hours)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InvalidArgumentError(f"--html {path}: is a folder; name a file, e.g. {os.path.join(path, 'report.html')}")
    if not os.path.isdir(folder):
        raise InvalidArgumentError(f"--html {path}: folder {folder} does not exist; create it or name another file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidArgumentError(f"--html {path}: folder {folder} is not writable")
    return path


def cmd_verify(args: argparse.Namespace, out: TextIO = sys.stdout, console: Console | None = None) -> int:
    from airflow_multicloud.hooks.factory import open_locations
    from airflow_multicloud.replication.engine import check_locations
    from airflow_multicloud.validation.compare import compare_replicas

    try:
        html = _html_target(args.html) if args.html else None
        opt.apply_inline_connections(args.conn)
        workers = arguments.whole("--workers", args.workers, 1)
        if console is not None:
            from airflow_multicloud.cli.main import prepare_connections

            prepare_connections(args, console)
        source, replicas = open_locations(args.source, args.src_conn, args.destinations, args.dst_conn,
                                          env_connections=True)  # fmt: skip
        # a replica that is the source (or inside it) would compare a dataset with itself and always pass
        check_locations(source, replicas)
        report = compare_replicas(
            source,
            replicas,
            level=args.level,
            workers=workers,
            count_rows=args.rows,
            allow_unverified=args.allow_unverified,
        )
    except Exception as exc:
        outcome = outcome_of(exc)
        log.debug("verify stopped", exc_info=True)
        (console or Console()).write_line(f"multicloud verify: {exc}")
        print_outcome(outcome, str(exc), args.json, out)
        return int(outcome)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str), file=out)
    else:
        print(report.table(), file=out)
    if html:
        with open(html, "w", encoding="utf-8") as f:
            f.write(report.to_html())
    return int(Outcome.VERIFIED if report.ok else Outcome.FAILED)
