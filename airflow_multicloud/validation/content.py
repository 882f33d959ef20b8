"""Row-level checks of a dataset and its replicas: row counts per file side by side, and expectation suites.

A file that cannot be parsed is reported with its key and the parser's reason (kind ``unreadable``), never
skipped. Files whose format cannot be told (no known extension and no ``formats`` glob) are not data files.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow_multicloud.errors import MulticloudError
from airflow_multicloud.replication.model import Location
from airflow_multicloud.stores.base import ObjectInfo
from airflow_multicloud.validation.report import Difference, ReplicaReport
from airflow_multicloud.validation.rows import Format, RowCountError, count_rows, detect_format
from airflow_multicloud.validation.sources import StoreSource

log = logging.getLogger(__name__)

Replica = tuple[Location, dict[str, ObjectInfo], ReplicaReport]


def format_of(rel: str, formats: Mapping[str, str] | None) -> Format | None:
    """The format a glob of ``formats`` assigns, else the extension's; None when neither tells."""
    for glob, name in (formats or {}).items():
        if fnmatch.fnmatchcase(rel, glob):
            return Format.parse(name)
    try:
        return detect_format(rel)
    except RowCountError:
        return None


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, MulticloudError) else f"{type(exc).__name__}: {exc}"


def _count(loc: Location, info: ObjectInfo, rel: str, fmt: Format) -> int | str:
    """Rows, or the reason the object could not be counted."""
    try:
        return count_rows(StoreSource(loc.store, loc.key(rel), info.size), fmt).rows
    except (MulticloudError, OSError, ValueError) as exc:
        return _reason(exc)


def check_content(
    source: Location,
    src: dict[str, ObjectInfo],
    replicas: Sequence[Replica],
    pool: ThreadPoolExecutor,
    *,
    count_rows: bool,
    formats: Mapping[str, str] | None,
    expectations: Mapping[str, Sequence[Mapping[str, Any]]] | None,
    sample: int | None,
) -> int | None:
    """Fill each replica report's rows, files and expectations; return the source's total rows (if counted)."""
    data = {rel: fmt for rel in sorted(src) if (fmt := format_of(rel, formats)) is not None}
    src_rows: dict[str, int | str] = {}
    if count_rows:
        src_rows = _row_counts(source, src, replicas, pool, data)
    if expectations is not None:
        _run_expectations(source, src, replicas, data, src_rows, expectations, sample)
    if not count_rows:
        return None
    return sum(n for n in src_rows.values() if isinstance(n, int))


def _row_counts(
    source: Location,
    src: dict[str, ObjectInfo],
    replicas: Sequence[Replica],
    pool: ThreadPoolExecutor,
    data: dict[str, Format],
) -> dict[str, int | str]:
    def one(rel: str) -> tuple[int | str, list[int | str | None]]:
        fmt = data[rel]
        theirs = [
            _count(loc, listing[rel], rel, fmt) if rel in listing else None for loc, listing, _ in replicas
        ]  # a missing replica file is already a difference; its rows are left out
        return _count(source, src[rel], rel, fmt), theirs

    src_rows: dict[str, int | str] = {}
    for rep in replicas:
        rep[2].rows, rep[2].source_rows = 0, 0
    for rel, (mine, theirs) in zip(data, pool.map(one, list(data)), strict=True):
        src_rows[rel] = mine
        for (_, _, report), got in zip(replicas, theirs, strict=True):
            _record_rows(report, rel, mine, got)
    return src_rows


def _record_rows(report: ReplicaReport, rel: str, mine: int | str, got: int | str | None) -> None:
    report.files[rel] = {"source_rows": mine if isinstance(mine, int) else None, "replica_rows": None}
    if isinstance(mine, int):
        report.source_rows = (report.source_rows or 0) + mine
    else:
        report.add(Difference(rel, "unreadable", mine, None, "the source file cannot be parsed"))
    if got is None:
        return
    if isinstance(got, str):
        report.add(Difference(rel, "unreadable", None, got, "the replica file cannot be parsed"))
        return
    report.files[rel]["replica_rows"] = got
    report.rows = (report.rows or 0) + got
    if isinstance(mine, int) and got != mine:
        report.add(Difference(rel, "rows", mine, got, "row counts differ"))


def _declared_for(rel: str, expectations: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
    return [d for glob, declared in expectations.items() if fnmatch.fnmatchcase(rel, glob) for d in declared]


def _run_expectations(
    source: Location,
    src: dict[str, ObjectInfo],
    replicas: Sequence[Replica],
    data: dict[str, Format],
    src_rows: dict[str, int | str],
    expectations: Mapping[str, Sequence[Mapping[str, Any]]],
    sample: int | None,
) -> None:
    """One file at a time: GX contexts are not shared between threads, and a suite already streams its file."""
    from airflow_multicloud.validation.expectations import read_schema, validate_source

    for rel, fmt in data.items():
        src_source = StoreSource(source.store, source.key(rel), src[rel].size)
        try:
            rows = src_rows.get(rel)
            if rows is None:
                rows = count_rows(src_source, fmt).rows
            if isinstance(rows, str):
                raise RowCountError(rows)
            schema = read_schema(src_source, fmt)
        except (MulticloudError, OSError, ValueError) as exc:
            for _, listing, report in replicas:
                if rel in listing and rel not in src_rows:  # row counting already reported it
                    report.add(Difference(rel, "unreadable", _reason(exc), None, "the source file cannot be parsed"))
            continue
        for loc, listing, report in replicas:
            if rel not in listing:
                continue
            target = StoreSource(loc.store, loc.key(rel), listing[rel].size)
            try:
                result = validate_source(
                    target,
                    fmt,
                    expected_row_count=rows,
                    expected_schema=schema,
                    expectations=_declared_for(rel, expectations),
                    sample=sample,
                )
            except RowCountError as exc:
                report.add(Difference(rel, "unreadable", None, _reason(exc), "the replica file cannot be loaded"))
                report.expectations.append({"key": rel, "success": False, "mode": "-", "summary": str(exc)})
                continue
            report.expectations.append(
                {
                    "key": rel,
                    "success": result.success,
                    "mode": result.mode,
                    "rows_checked": result.rows_checked,
                    "rows_total": result.rows_total,
                    "summary": result.summary(),
                    "assertions": [
                        {"expectation": a.name, "success": a.success, "observed": _short(a.observed)}
                        for a in result.assertions
                    ],
                }
            )
            for a in result.failures:
                expected = _short(a.kwargs.get("value", a.kwargs) if a.kwargs else None)
                report.add(Difference(rel, "expectation", expected, _short(a.observed), f"{a.name} ({result.mode})"))


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
