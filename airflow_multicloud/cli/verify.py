"""``multicloud verify SRC DST [DST...]``: compare a dataset with its replicas outside Airflow.

Exit codes: 0 every replica matches, 1 some difference (or unverified objects, unless --allow-unverified),
2 bad input (unknown scheme, missing connection, bad flag).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from airflow_multicloud.cli import options as opt
from airflow_multicloud.errors import MulticloudError

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


def add_verify_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "verify", help="compare a dataset with its replicas (objects, checksums, optionally rows)"
    )
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
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument("--html", metavar="FILE", help="also write the report as a standalone HTML page")
    return p


def cmd_verify(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from airflow_multicloud.hooks.factory import open_location, pair_connections
    from airflow_multicloud.validation.compare import compare_replicas

    try:
        opt.apply_inline_connections(args.conn)
        source = open_location(args.source, args.src_conn)
        replicas = [
            open_location(uri, conn)
            for uri, conn in zip(args.destinations, pair_connections(args.destinations, args.dst_conn), strict=True)
        ]
        report = compare_replicas(
            source,
            replicas,
            level=args.level,
            workers=args.workers,
            count_rows=args.rows,
            allow_unverified=args.allow_unverified,
        )
    except (MulticloudError, ValueError) as exc:
        print(f"multicloud verify: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str), file=out)
    else:
        print(report.table(), file=out)
    if args.html:
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(report.to_html())
    return EXIT_OK if report.ok else EXIT_MISMATCH
