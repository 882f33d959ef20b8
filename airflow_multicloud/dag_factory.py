"""DAGs from a YAML file: one DAG per dataset entry, so a user adds a dataset without writing Python.

A bad entry raises :class:`DatasetConfigError` naming the file, the entry and the field, which Airflow shows as
the DAG file's import error. ``{partition}`` in a URI stands for the day of the run's data interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_multicloud.errors import InvalidURIError, MulticloudError
from airflow_multicloud.partitions import PARTITION_TEMPLATE
from airflow_multicloud.uri import parse_uri

ENTRY_FIELDS = {
    "name",
    "source",
    "source_conn_id",
    "destinations",
    "schedule",
    "start_date",
    "ready",
    "mode",
    "overwrite",
    "max_delete",
    "include",
    "exclude",
    "validate",
    "tags",
    "retries",
}
READY_KINDS = {"marker", "glob", "stable_for", "min_objects", "timeout", "poke_interval"}
VALIDATE_FIELDS = {"level", "rows", "expectations", "sample", "allow_unverified"}


class DatasetConfigError(MulticloudError, ValueError):
    pass


@dataclass
class Destination:
    uri: str
    conn_id: str | None = None


@dataclass
class DatasetEntry:
    name: str
    source: str
    destinations: list[Destination]
    source_conn_id: str | None = None
    schedule: str = "0 0 * * *"
    start_date: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    ready: dict[str, Any] = field(default_factory=dict)
    mode: str = "copy"
    overwrite: str = "if_changed"
    max_delete: int = 0
    include: list[str] | None = None
    exclude: list[str] = field(default_factory=list)
    validate: dict[str, Any] | None = field(default_factory=lambda: {"level": "quick"})
    tags: list[str] = field(default_factory=list)
    retries: int = 2


class _Where:
    def __init__(self, path: str, index: int, name: str | None) -> None:
        self.text = f"{path}: entry {index}" + (f" ({name!r})" if name else "")

    def fail(self, fld: str, message: str) -> DatasetConfigError:
        return DatasetConfigError(f"{self.text}: field {fld!r}: {message}")


def _uri(where: _Where, fld: str, value: Any) -> str:
    if not isinstance(value, str):
        raise where.fail(fld, f"expected a dataset URI string, got {value!r}")
    try:
        parse_uri(value.replace("{partition}", "2024-01-01"))
    except InvalidURIError as exc:
        raise where.fail(fld, str(exc)) from None
    return value.replace("{partition}", PARTITION_TEMPLATE)


def _destinations(where: _Where, value: Any) -> list[Destination]:
    if not isinstance(value, list) or not value:
        raise where.fail("destinations", "expected a non-empty list of URIs or {uri, conn_id} mappings")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            out.append(Destination(_uri(where, f"destinations[{i}]", item)))
        elif isinstance(item, Mapping) and set(item) <= {"uri", "conn_id"} and "uri" in item:
            out.append(Destination(_uri(where, f"destinations[{i}].uri", item["uri"]), item.get("conn_id")))
        else:
            raise where.fail(f"destinations[{i}]", f"expected a URI or {{uri, conn_id}}, got {item!r}")
    return out


def _check_schedule(where: _Where, value: Any) -> str:
    from croniter import croniter

    if not isinstance(value, str) or not croniter.is_valid(value):
        raise where.fail("schedule", f"{value!r} is not a cron expression, e.g. '0 0 * * *'")
    return value


def _check_sections(where: _Where, raw: Mapping[str, Any]) -> None:
    ready = raw.get("ready", {"marker": "_SUCCESS"})
    if not isinstance(ready, Mapping) or set(ready) - READY_KINDS:
        raise where.fail("ready", f"expected a mapping of {sorted(READY_KINDS)}, got {ready!r}")
    if sum(k in ready for k in ("marker", "glob", "stable_for")) != 1:
        raise where.fail("ready", "give exactly one of marker, glob, stable_for")
    validate = raw.get("validate", {"level": "quick"})
    if validate is not None and (not isinstance(validate, Mapping) or set(validate) - VALIDATE_FIELDS):
        raise where.fail("validate", f"expected null or a mapping of {sorted(VALIDATE_FIELDS)}, got {validate!r}")


def parse_entry(path: str, index: int, raw: Any) -> DatasetEntry:
    name = raw.get("name") if isinstance(raw, Mapping) else None
    where = _Where(path, index, name if isinstance(name, str) else None)
    if not isinstance(raw, Mapping):
        raise DatasetConfigError(f"{where.text}: expected a mapping, got {raw!r}")
    unknown = sorted(set(raw) - ENTRY_FIELDS)
    if unknown:
        raise where.fail(unknown[0], f"unknown field (known: {', '.join(sorted(ENTRY_FIELDS))})")
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise where.fail("name", f"expected letters, digits, '_' or '-', got {name!r}")
    if "source" not in raw:
        raise where.fail("source", "missing: the dataset URI to copy from")
    _check_sections(where, raw)
    start = raw.get("start_date", "2024-01-01")
    try:
        start_date = datetime.fromisoformat(str(start)).replace(tzinfo=UTC)
    except ValueError:
        raise where.fail("start_date", f"{start!r} is not a date (YYYY-MM-DD)") from None
    from airflow_multicloud.replication.model import Mode, Overwrite, parse_choice

    for fld, enum in (("mode", Mode), ("overwrite", Overwrite)):
        if fld in raw:
            try:
                parse_choice(enum, raw[fld], fld)
            except ValueError as exc:
                raise where.fail(fld, str(exc)) from None
    return DatasetEntry(
        name=name,
        source=_uri(where, "source", raw["source"]),
        destinations=_destinations(where, raw.get("destinations")),
        source_conn_id=raw.get("source_conn_id"),
        schedule=_check_schedule(where, raw.get("schedule", "0 0 * * *")),
        start_date=start_date,
        ready=dict(raw.get("ready", {"marker": "_SUCCESS"})),
        mode=raw.get("mode", "copy"),
        overwrite=raw.get("overwrite", "if_changed"),
        max_delete=int(raw.get("max_delete", 0)),
        include=raw.get("include"),
        exclude=list(raw.get("exclude", [])),
        validate=raw.get("validate", {"level": "quick"}),
        tags=list(raw.get("tags", [])),
        retries=int(raw.get("retries", 2)),
    )


def load_entries(path: str | Path) -> list[DatasetEntry]:
    import yaml

    text = Path(path).read_text()
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise DatasetConfigError(f"{path}: not valid YAML: {exc}") from None
    raw_entries = doc.get("datasets") if isinstance(doc, Mapping) else None
    if not isinstance(raw_entries, list):
        raise DatasetConfigError(f"{path}: expected a top-level 'datasets:' list")
    entries = [parse_entry(str(path), i, raw) for i, raw in enumerate(raw_entries, 1)]
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DatasetConfigError(f"{path}: dataset name {dupes[0]!r} is used more than once")
    return entries


def build_dag(entry: DatasetEntry, fileloc: str | None = None) -> Any:
    """The DAG for one entry; ``fileloc`` is the DAG file calling this (Airflow re-parses it, not this module)."""
    from airflow.sdk import DAG
    from airflow.timetables.interval import CronDataIntervalTimetable

    from airflow_multicloud.operators.replicate import ReplicateDatasetOperator
    from airflow_multicloud.operators.validate import ValidateReplicaOperator
    from airflow_multicloud.partitions import MACROS
    from airflow_multicloud.sensors.partition import DatasetPartitionSensor

    dests = [d.uri for d in entry.destinations]
    conns = [d.conn_id for d in entry.destinations]
    dest_conns = None if all(c is None for c in conns) else conns
    with DAG(
        dag_id=f"replicate_{entry.name}",
        schedule=CronDataIntervalTimetable(entry.schedule, timezone="UTC"),
        start_date=entry.start_date,
        catchup=False,
        max_active_runs=3,
        user_defined_macros=MACROS,
        default_args={"retries": entry.retries},
        tags=["multicloud", *entry.tags],
        doc_md=f"Replicates `{entry.source}` to {', '.join(f'`{d}`' for d in dests)} (from the YAML config).",
    ) as dag:
        ready = {k: v for k, v in entry.ready.items() if k not in ("timeout", "poke_interval")}
        wait = DatasetPartitionSensor(
            task_id="wait_for_partition",
            uri=entry.source,
            conn_id=entry.source_conn_id,
            timeout=entry.ready.get("timeout", 6 * 3600),
            poke_interval=entry.ready.get("poke_interval", 60),
            # a stable listing must be compared across pokes, which only poke mode keeps in memory
            mode="poke" if "stable_for" in ready else "reschedule",
            **ready,
        )
        copy = ReplicateDatasetOperator(
            task_id="replicate",
            source=entry.source,
            destinations=dests,
            source_conn_id=entry.source_conn_id,
            destination_conn_ids=dest_conns,  # type: ignore[arg-type]
            mode=entry.mode,
            overwrite=entry.overwrite,
            max_delete=entry.max_delete,
            include=entry.include,
            exclude=entry.exclude,
        )
        if entry.validate is not None:
            # the validate task then emits each replica's asset event: the copy and its proof together
            copy.outlets = []
        wait >> copy
        if entry.validate is not None:
            check = ValidateReplicaOperator(
                task_id="validate",
                source=entry.source,
                replicas=dests,
                source_conn_id=entry.source_conn_id,
                replica_conn_ids=dest_conns,
                level=entry.validate.get("level", "quick"),
                count_rows=bool(entry.validate.get("rows", False)),
                expectations=entry.validate.get("expectations"),
                sample=entry.validate.get("sample"),
                allow_unverified=bool(entry.validate.get("allow_unverified", False)),
                replication=copy.output,
            )
            copy >> check
    if fileloc:
        dag.fileloc = fileloc
    return dag
