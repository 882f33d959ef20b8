"""Expectation suites over a dataset replica, run with Great Expectations 1.x directly (not its Airflow provider).

All GX code of the package lives here. Data is streamed with pyarrow and checked in pandas chunks, so memory
is bounded by ``chunk_rows``: the row count covers the whole file, while user expectations run on each chunk
(``mode="full"``) or on a seeded uniform sample of N rows (``mode="sample of N rows"``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_multicloud.errors import MulticloudError
from airflow_multicloud.validation.rows import Format, RowCountError, detect_format, gunzip
from airflow_multicloud.validation.sources import ChunkStream, RangeFile, RangeSource

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# GX logs at INFO on import and per validation; set before it is first imported so nothing slips through.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

_MiB = 1024 * 1024


class ExpectationConfigError(MulticloudError, ValueError):
    """A declared expectation that is unknown, malformed, or has bad kwargs."""


@dataclass(frozen=True)
class Assertion:
    """One checked expectation; ``observed`` is GX's observed value (or unexpected counts, summed over chunks)."""

    name: str
    kwargs: dict[str, Any]
    success: bool
    observed: Any
    detail: str = ""


@dataclass(frozen=True)
class SuiteResult:
    """``rows_total`` rows were read; expectations ran on ``rows_checked`` of them, as ``mode`` says."""

    success: bool
    assertions: list[Assertion]
    rows_checked: int
    rows_total: int
    mode: str
    chunks: int = 0
    failures: list[Assertion] = field(default_factory=list)

    def summary(self) -> str:
        head = f"{'passed' if self.success else 'FAILED'}: {len(self.assertions)} assertions on {self.mode}"
        lines = [f"{head} ({self.rows_checked} of {self.rows_total} rows, {self.chunks} chunks)"]
        lines += [f"  failed {a.name}({a.kwargs}): observed {a.observed!r} {a.detail}".rstrip() for a in self.failures]
        return "\n".join(lines)


# ---- declared expectations -----------------------------------------------------------------------------
def _expectation_class(name: str) -> type:
    import great_expectations.expectations as gxe

    if not isinstance(name, str) or not name.startswith("expect_"):
        raise ExpectationConfigError(f"expectation name must look like 'expect_...', got {name!r}")
    cls = getattr(gxe, "".join(part.capitalize() for part in name.split("_")), None)
    if not isinstance(cls, type) or not issubclass(cls, gxe.Expectation):
        import difflib

        known = [n for n in dir(gxe) if n.startswith("Expect")]
        snake = ["".join("_" + c.lower() if c.isupper() else c for c in n).lstrip("_") for n in known]
        close = difflib.get_close_matches(name, snake, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ExpectationConfigError(f"unknown expectation {name!r} (not in great_expectations.expectations){hint}")
    return cls


def build_expectation(declared: Mapping[str, Any], index: int = 0) -> Any:
    """A GX Expectation from ``{"expectation": "expect_...", "kwargs": {...}}``; ``meta`` tags its position."""
    if not isinstance(declared, Mapping) or "expectation" not in declared:
        raise ExpectationConfigError(
            f"expectation #{index} must be a dict with 'expectation' and 'kwargs': {declared!r}"
        )
    extra = set(declared) - {"expectation", "kwargs"}
    if extra:
        raise ExpectationConfigError(f"expectation #{index}: unknown keys {sorted(extra)}; use 'expectation', 'kwargs'")
    name = declared["expectation"]
    kwargs = dict(declared.get("kwargs") or {})
    cls = _expectation_class(name)
    try:
        return cls(**kwargs, meta={"mc_index": index})
    except (TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        reason = " ".join(line.strip() for line in str(exc).splitlines())  # pydantic spreads it over lines
        raise ExpectationConfigError(f"bad kwargs {kwargs!r} for {name}: {reason}") from exc


# ---- loading data --------------------------------------------------------------------------------------
def load_batches(
    source: RangeSource,
    fmt: Format | str | None = None,
    *,
    header: bool = True,
    delimiter: str | None = None,
    block_size: int = 4 * _MiB,
    column_types: Mapping[str, Any] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream ``source`` as Arrow record batches (CSV/TSV, JSON Lines, Parquet, gzip of the text formats).

    CSV types are inferred from the first ``block_size`` bytes; pass ``column_types`` when later rows differ.
    :raises RowCountError: the data cannot be parsed; the message names the object.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    form = Format.parse(fmt) if fmt is not None else detect_format(source.name)
    try:
        if form.kind == "parquet":
            parquet = pq.ParquetFile(RangeFile(source, block_size=block_size))
            yield from _or_empty(parquet.iter_batches(), parquet.schema_arrow)
            return
        chunks: Iterable[bytes] = source.read(0, None)
        if form.compression == "gzip":
            chunks = gunzip(chunks, source.name)
        stream = ChunkStream(chunks, source.name)
        reader: Any
        if form.kind == "jsonl":
            reader = pajson.open_json(stream, read_options=pajson.ReadOptions(block_size=block_size))
        else:
            delim = delimiter or ("\t" if form.kind == "tsv" else ",")
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=block_size, autogenerate_column_names=not header),
                parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(column_types=dict(column_types or {})),
            )
        yield from _or_empty(reader, reader.schema)
    except (pa.ArrowException, OSError) as exc:
        if "Empty CSV file" in str(exc) or "Empty JSON" in str(exc):
            return  # an empty object has no rows; row-count checks still see 0
        hint = (
            " (types are inferred from the first block; pass column_types=)" if "conversion error" in str(exc) else ""
        )
        raise RowCountError(f"{source.name}: cannot read as {form}: {exc}{hint}") from exc


def _or_empty(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The batches, or one empty batch: a header-only file still has columns to check."""
    import pyarrow as pa

    empty = True
    for batch in batches:
        empty = False
        yield batch
    if empty:
        yield pa.RecordBatch.from_pylist([], schema=schema)


def read_schema(source: RangeSource, fmt: Format | str | None = None, **load_options: Any) -> pa.Schema:
    """The Arrow schema of ``source``: the Parquet footer, or what pyarrow infers from the first text block."""
    import pyarrow as pa

    for batch in load_batches(source, fmt, **load_options):
        return batch.schema
    return pa.schema([])


# ---- running a suite -----------------------------------------------------------------------------------
def _as_table(part: Any) -> pa.Table:
    import pandas as pd
    import pyarrow as pa

    if isinstance(part, pa.Table):
        return part
    if isinstance(part, pa.RecordBatch):
        return pa.Table.from_batches([part])
    if isinstance(part, pd.DataFrame):
        return pa.Table.from_pandas(part, preserve_index=False)
    raise TypeError(f"expected pandas DataFrames or pyarrow RecordBatches/Tables, got {type(part).__name__}")


def _rechunk(parts: Iterable[Any], chunk_rows: int) -> Iterator[pa.Table]:
    """Tables of ``chunk_rows`` rows (the last one shorter): small batches are merged since GX has a per-call
    cost, big ones cut since pandas needs several times the Arrow memory."""
    import pyarrow as pa

    pending: list[pa.Table] = []
    have = 0
    yielded = False
    first: pa.Table | None = None
    for part in parts:
        table = _as_table(part)
        first = table if first is None else first
        while table.num_rows and have + table.num_rows >= chunk_rows:
            take = chunk_rows - have
            yield pa.concat_tables([*pending, table.slice(0, take)])
            pending, have, table, yielded = [], 0, table.slice(take), True
        if table.num_rows:
            pending.append(table)
            have += table.num_rows
    if pending:
        yield pa.concat_tables(pending)
    elif not yielded and first is not None:  # no rows at all: a header-only file still has columns to check
        yield first.slice(0, 0)


class _Reservoir:
    """A seeded uniform sample of ``size`` rows over a stream of tables (Algorithm R, vectorised per table)."""

    def __init__(self, size: int, seed: int) -> None:
        import numpy as np

        self.size = size
        self.rng = np.random.default_rng(seed)
        self.seen = 0
        self.table: pa.Table | None = None

    def add(self, table: pa.Table) -> None:
        import numpy as np
        import pyarrow as pa

        n = table.num_rows
        if self.table is None:
            self.table = table.slice(0, 0)
        fill = min(max(self.size - self.seen, 0), n)
        if fill:
            self.table = pa.concat_tables([self.table, table.slice(0, fill)])
        rest = np.arange(self.seen + fill, self.seen + n)  # global indices of rows that may replace a slot
        if len(rest):
            slot = self.rng.integers(0, rest + 1)
            keep = slot < self.size
            index = np.arange(self.size)
            index[slot[keep]] = self.size + fill + np.flatnonzero(keep)  # a later row wins a slot, as in sequence
            self.table = pa.concat_tables([self.table, table]).take(pa.array(index))
        self.seen += n


def _compare_schema(observed: pa.Schema, expected: Any) -> Assertion:
    import pyarrow as pa

    want = expected if isinstance(expected, pa.Schema) else pa.schema(list(dict(expected).items()))
    got = {f.name: f.type for f in observed}
    diffs = {f.name: f"{got[f.name]} (expected {f.type})" for f in want if f.name in got and got[f.name] != f.type}
    diffs |= {f.name: f"missing (expected {f.type})" for f in want if f.name not in got}
    diffs |= {name: f"unexpected column of type {typ}" for name, typ in got.items() if name not in want.names}
    kwargs = {"schema": {f.name: str(f.type) for f in want}}
    return Assertion("arrow_schema_types_match", kwargs, not diffs, diffs or "types match", "compared as Arrow types")


def _merge(name: str, kwargs: dict[str, Any], results: list[Any], chunks: int) -> Assertion:
    """One assertion from the per-chunk results of one expectation."""
    success = all(r.success for r in results)
    failed = [r for r in results if not r.success]
    errors = sorted({msg for r in failed for msg in _exception_messages(r.exception_info)})
    first = (failed[0] if failed else results[-1]).result or {}
    observed: Any
    if "unexpected_count" in first:  # column map expectations: counts add up over chunks
        observed = {
            "element_count": sum((r.result or {}).get("element_count", 0) for r in results),
            "unexpected_count": sum((r.result or {}).get("unexpected_count", 0) for r in results),
            "partial_unexpected_list": first.get("partial_unexpected_list", []),
        }
    else:
        observed = first.get("observed_value")
    detail = f"failed in {len(failed)} of {chunks} chunks" if failed and chunks > 1 else ""
    if chunks > 1 and not detail:
        detail = f"evaluated on each of {chunks} chunks"
    if errors:
        detail = f"{detail}; error: {'; '.join(errors)}".lstrip("; ")
    return Assertion(name, kwargs, success, observed, detail)


def _exception_messages(info: Any) -> list[str]:
    # GX 1.24 gives either one {"raised_exception", "exception_message"} dict or one such dict per metric.
    if not isinstance(info, Mapping):
        return []
    if "raised_exception" in info:
        return [str(info["exception_message"])] if info.get("raised_exception") else []
    return [m for sub in info.values() for m in _exception_messages(sub)]


def run_suite(
    frames_or_batches: Iterable[Any],
    *,
    expected_row_count: int | None = None,
    expected_schema: pa.Schema | Mapping[str, Any] | None = None,
    expectations: Sequence[Mapping[str, Any]] = (),
    sample: int | None = None,
    chunk_rows: int = 250_000,
    seed: int = 0,
) -> SuiteResult:
    """Check data (pandas DataFrames and/or Arrow batches/tables) against the source's facts and user expectations.

    Default assertions: ``expect_table_row_count_to_equal`` over all rows (counted while streaming, since a
    chunk only knows its own rows), ``expect_table_columns_to_match_ordered_list`` and the Arrow types of
    ``expected_schema``. ``expectations`` are declared dicts run by GX per chunk, or on the sample.
    """
    if sample is not None and sample < 1:
        raise ExpectationConfigError(f"sample must be a positive number of rows, got {sample}")
    declared = [build_expectation(d, i) for i, d in enumerate(expectations)]  # fail fast, before reading data
    names = [(str(d["expectation"]), dict(d.get("kwargs") or {})) for d in expectations]
    import pyarrow as pa

    if expected_schema is not None:
        want = expected_schema if isinstance(expected_schema, pa.Schema) else pa.schema(list(expected_schema.items()))
        names.append(("expect_table_columns_to_match_ordered_list", {"column_list": want.names}))
        declared.append(_expectation_class(names[-1][0])(**names[-1][1], meta={"mc_index": len(declared)}))
    runner = _Runner(declared) if declared else None
    reservoir = _Reservoir(sample, seed) if sample else None
    per_expectation: list[list[Any]] = [[] for _ in declared]
    total = chunks = checked = 0
    schema: pa.Schema | None = None
    for table in _rechunk(frames_or_batches, chunk_rows):
        total += table.num_rows
        schema = schema or table.schema
        if reservoir is not None:
            reservoir.add(table)
        else:
            chunks, checked = chunks + 1, checked + table.num_rows
            _collect(runner, table, per_expectation)
    if reservoir is not None and reservoir.table is not None:
        chunks, checked = 1, reservoir.table.num_rows
        _collect(runner, reservoir.table, per_expectation)
    mode = f"sample of {sample} rows" if sample is not None and total > sample else "full"
    assertions: list[Assertion] = []
    if expected_row_count is not None:
        ok = total == expected_row_count
        detail = "counted over all rows while streaming"
        assertions.append(
            Assertion("expect_table_row_count_to_equal", {"value": expected_row_count}, ok, total, detail)
        )
    for (name, kwargs), results in zip(names, per_expectation, strict=True):
        if results:
            assertions.append(_merge(name, kwargs, results, chunks))
        else:  # no rows at all: nothing for GX to look at; column checks still compare the (empty) schema
            assertions.append(Assertion(name, kwargs, True, None, "not evaluated: no rows"))
    if expected_schema is not None:
        assertions.append(_compare_schema(schema if schema is not None else pa.schema([]), expected_schema))
    failures = [a for a in assertions if not a.success]
    return SuiteResult(not failures, assertions, checked, total, mode, chunks, failures)


def _collect(runner: _Runner | None, table: pa.Table, per_expectation: list[list[Any]]) -> None:
    if runner is not None:
        for i, result in enumerate(runner.validate(table)):
            per_expectation[i].append(result)


class _Runner:
    """One ephemeral GX context and suite, reused for every chunk (building them per chunk costs more than
    validating a small chunk)."""

    def __init__(self, expectations: list[Any]) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        # GX sets this module's logger to INFO on import, whatever its parent says; it logs a line per context.
        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
        self.context = gx.get_context(mode="ephemeral")
        # Without this GX draws a tqdm "Calculating Metrics" bar per validation into the task log.
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        asset = self.context.data_sources.add_pandas("multicloud").add_dataframe_asset("replica")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("chunk")
        self.suite = gx.ExpectationSuite(name="multicloud-replica")
        for expectation in expectations:
            self.suite.add_expectation(expectation)
        self.count = len(expectations)

    def validate(self, table: pa.Table) -> list[Any]:
        frame: pd.DataFrame = table.to_pandas()
        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        results = batch.validate(self.suite).results
        ordered: list[Any] = [None] * self.count
        for result in results:  # GX does not keep the suite's order; meta carries each one's position
            config = result.expectation_config
            assert config is not None and config.meta is not None
            ordered[config.meta["mc_index"]] = result
        return ordered


def validate_source(
    source: RangeSource,
    fmt: Format | str | None = None,
    *,
    header: bool = True,
    delimiter: str | None = None,
    **suite_options: Any,
) -> SuiteResult:
    """Load ``source`` with :func:`load_batches` and :func:`run_suite` it."""
    return run_suite(load_batches(source, fmt, header=header, delimiter=delimiter), **suite_options)
