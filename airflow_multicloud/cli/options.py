"""Command-line flags shared by ``replicate`` and ``verify``, mapped onto the engine's options.

Imported only once a command that copies or compares was named (``multicloud --help`` builds no subcommand).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from datetime import timedelta

from airflow_multicloud import arguments
from airflow_multicloud.errors import InvalidArgumentError
from airflow_multicloud.replication.copy import MAX_BUFFER, CopyOptions
from airflow_multicloud.replication.engine import ReplicationOptions
from airflow_multicloud.replication.model import Mode, Overwrite, parse_choice
from airflow_multicloud.replication.plan import Filters
from airflow_multicloud.replication.progress import Display
from airflow_multicloud.replication.proof import SourceVerification
from airflow_multicloud.replication.stream import BandwidthLimiter
from airflow_multicloud.stores.base import DEFAULT_TRANSFER, MiB, TransferConfig
from airflow_multicloud.stores.retention import RetentionMode

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CONN_ID = re.compile(r"[A-Za-z0-9_.\-]+")


def duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``7d`` or plain seconds."""
    try:
        seconds = float(text[:-1]) * _UNITS[text[-1]] if text[-1] in _UNITS else float(text)
    except (ValueError, IndexError):
        seconds = -1.0
    if not 0 <= seconds < timedelta.max.total_seconds():
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: use e.g. 90s, 15m, 2h or 7d")
    return timedelta(seconds=seconds)


def size(text: str) -> int:
    """``16MiB``, ``8M``, ``1GiB`` or plain bytes."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1024, "M": MiB, "G": 1024 * MiB}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if mult > 1 else t) * mult
    except ValueError:
        value = -1.0
    if not 0 < value < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: use e.g. 16MiB, 512KiB or 1GiB")
    return int(value)


def add_connection_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src-conn", help="Airflow connection id for the source (default: the scheme's *_default)")
    p.add_argument(
        "--dst-conn",
        action="append",
        default=[],
        help="connection id for the destinations: once for all, or once per destination in order",
    )
    p.add_argument(
        "--conn",
        action="append",
        default=[],
        metavar="ID=JSON_OR_URI",
        help="define a connection inline (sets AIRFLOW_CONN_<ID>); Airflow's own environment variables work too",
    )


def apply_inline_connections(items: list[str]) -> None:
    """Define each ``--conn ID=JSON_OR_URI`` for this process, after checking them all (a bad one defines none)."""
    defined = {}
    for item in items:
        conn_id, sep, value = item.partition("=")
        # the value holds a secret: messages name the connection id only
        if not sep or not _CONN_ID.fullmatch(conn_id) or not value.strip():
            raise InvalidArgumentError(
                "--conn: expected ID=JSON_OR_URI with an id of letters, digits, '_', '-' or '.', e.g. "
                'cos_backup=\'{"conn_type": "cos"}\''
            )
        if value.lstrip().startswith("{"):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as exc:
                raise InvalidArgumentError(
                    f"--conn {conn_id}: the JSON is not valid (line {exc.lineno}, column {exc.colno}): quote it for "
                    f'the shell, e.g. {conn_id}=\'{{"conn_type": "cos", ...}}\''
                ) from None
            if not isinstance(parsed, dict) or not parsed.get("conn_type"):
                raise InvalidArgumentError(f'--conn {conn_id}: the JSON needs a "conn_type", e.g. "aws", "cos"')
        elif "://" not in value:
            raise InvalidArgumentError(f"--conn {conn_id}: expected a JSON object or a connection URI (type://...)")
        defined[f"AIRFLOW_CONN_{conn_id.upper()}"] = value
    os.environ.update(defined)


def add_replication_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mode",
        type=str.lower,
        choices=[m.value for m in Mode],
        default=Mode.COPY.value,
        help="copy (default): never deletes; mirror: also deletes destination objects the source lacks",
    )
    p.add_argument(
        "--overwrite",
        type=str.lower,
        choices=[o.value for o in Overwrite],
        default=Overwrite.IF_CHANGED.value,
        help="if_changed (default): re-copy a changed source object; never: report it, leave the replica",
    )
    p.add_argument("--max-delete", type=int, default=0, help="mirror: most destination objects it may delete")
    p.add_argument("--include", action="append", help="glob on keys relative to the source prefix (repeatable)")
    p.add_argument("--exclude", action="append", default=[], help="glob to leave out (repeatable)")
    p.add_argument("--min-age", type=duration, help="only objects older than this (e.g. 15m)")
    p.add_argument("--max-age", type=duration, help="only objects younger than this (e.g. 7d)")
    p.add_argument("--dry-run", action="store_true", help="plan and report, write nothing")
    p.add_argument("--allow-empty", action="store_true", help="an empty source is not an error")
    o = ReplicationOptions
    p.add_argument("--workers", type=int, default=o.workers, help=f"objects in flight (default {o.workers})")
    p.add_argument(
        "--adaptive-workers",
        action="store_true",
        help="small objects in flight start at --workers and follow the link's latency x throughput",
    )
    p.add_argument(
        "--large-workers",
        type=int,
        default=o.large_workers,
        help=f"multipart objects in flight (default {o.large_workers})",
    )
    d = DEFAULT_TRANSFER
    p.add_argument(
        "--threshold",
        type=size,
        default=d.multipart_threshold,
        help=f"multipart at or above this size (default {d.multipart_threshold // MiB}MiB)",
    )
    p.add_argument(
        "--part-size", type=size, default=d.part_size, help=f"multipart part size (default {d.part_size // MiB}MiB)"
    )
    p.add_argument(
        "--part-concurrency",
        type=int,
        default=d.max_concurrency,
        help=f"parts in flight per object (default {d.max_concurrency})",
    )
    p.add_argument("--bandwidth", type=size, help="limit source reads to this many bytes per second, e.g. 50MiB")
    p.add_argument(
        "--max-buffer",
        type=size,
        default=MAX_BUFFER,
        help=f"object bytes the whole run may hold in memory at once (default {MAX_BUFFER // MiB}MiB)",
    )
    p.add_argument("--retries", type=int, default=3, help="attempts per object after the first (default 3)")
    p.add_argument("--no-server-side", action="store_true", help="always stream, even within one service")
    p.add_argument(
        "--source-verification",
        choices=[v.value for v in SourceVerification],
        default=SourceVerification.AUTO.value,
        help="auto (default): prove each object read with the source's own checksums, else by a second read; "
        "strict: fail objects whose source holds no checksum",
    )
    p.add_argument(
        "--progress-interval",
        type=float,
        default=5.0,
        help="seconds between progress lines when stderr is not a terminal (default 5; 0: none); a terminal "
        "gets a live bar",
    )
    p.add_argument("--run-id", default="", help="name for the manifests (default: random)")
    p.add_argument("--retention", help="keep replicas write-once for N days or until an ISO date (object lock)")
    p.add_argument(
        "--retention-mode",
        type=str.upper,
        choices=[m.value for m in RetentionMode],
        default=RetentionMode.COMPLIANCE.value,
        help="COMPLIANCE (default) or GOVERNANCE (S3)",
    )
    p.add_argument(
        "--require-immutable", action="store_true", help="refuse to start unless every destination can hold it"
    )
    p.add_argument("--max-cost", type=float, help="refuse to start when the estimated cost is above this")
    p.add_argument("--pricing", help="JSON pricing table replacing the shipped one")
    p.add_argument(
        "--stale-upload-age",
        type=duration,
        default=o.stale_upload_age,
        help="abort unfinished uploads under a destination older than this before the run (default 24h)",
    )


def transfer_config(args: argparse.Namespace) -> TransferConfig:
    return arguments.transfer(args.threshold, args.part_size, args.part_concurrency)


def replication_options(
    args: argparse.Namespace, display: Display | None = None, interval: float | None = None
) -> ReplicationOptions:
    """The engine's options from the flags; ``display`` and ``interval`` show the progress (the console's)."""
    # checked here too so that messages name the flags; ReplicationOptions checks the same for the operators
    arguments.whole("--retries", args.retries)
    arguments.whole("--workers", args.workers, 1)
    arguments.whole("--large-workers", args.large_workers, 1)
    arguments.whole("--max-delete", args.max_delete)
    arguments.number("--progress-interval", args.progress_interval)
    arguments.globs("--include", args.include)
    arguments.globs("--exclude", args.exclude)
    return ReplicationOptions(
        mode=parse_choice(Mode, args.mode, "mode"),
        overwrite=parse_choice(Overwrite, args.overwrite, "overwrite"),
        filters=Filters(args.include, tuple(args.exclude), args.min_age, args.max_age),
        max_delete=args.max_delete,
        workers=args.workers,
        adaptive=args.adaptive_workers,
        large_workers=args.large_workers,
        copy=CopyOptions(
            object_retries=args.retries,
            limiter=BandwidthLimiter(args.bandwidth) if args.bandwidth is not None else None,
            server_side=not args.no_server_side,
            source_verification=args.source_verification,
            max_buffer=args.max_buffer,
        ),
        dry_run=args.dry_run,
        allow_empty=args.allow_empty,
        progress_interval=args.progress_interval if interval is None else interval,
        progress_display=display,
        run_id=args.run_id,
        retention=args.retention,
        retention_mode=args.retention_mode,
        require_immutable=args.require_immutable,
        max_cost=args.max_cost,
        pricing=args.pricing,
        stale_upload_age=args.stale_upload_age,
    )
