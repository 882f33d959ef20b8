from __future__ import annotations

import gzip
import io
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_multicloud.errors import MulticloudError
from airflow_multicloud.validation.expectations import (
    ExpectationConfigError,
    SuiteResult,
    build_expectation,
    load_batches,
    read_schema,
    run_suite,
    validate_source,
)
from airflow_multicloud.validation.rows import RowCountError, count_rows
from airflow_multicloud.validation.sources import BytesSource, CountingSource

NOT_NULL_ID = {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}


def csv_bytes(n: int, *, drop: str | None = None, null_at: int | None = None) -> bytes:
    cols = ["id", "name", "amount"]
    lines = [",".join(c for c in cols if c != drop)]
    for i in range(n):
        row = {"id": "" if i == null_at else str(i), "name": f'"n{i}, ""q"""', "amount": f"{i * 1.5}"}
        lines.append(",".join(v for c, v in row.items() if c != drop))
    return ("\n".join(lines) + "\n").encode()


def check(source: BytesSource, replica: BytesSource, **kw: object) -> SuiteResult:
    """What a replication task does: facts from the source, a suite over the replica."""
    expected = count_rows(source).rows
    return validate_source(replica, expected_row_count=expected, expected_schema=read_schema(source), **kw)  # type: ignore[arg-type]


def by_name(result: SuiteResult, name: str) -> object:
    return next(a for a in result.assertions if a.name == name)


def test_passing_suite_on_identical_copy() -> None:
    data = csv_bytes(1000)
    result = check(BytesSource(data, "s3://a/t.csv"), BytesSource(data, "cos://b/t.csv"), expectations=[NOT_NULL_ID])
    assert result.success, result.summary()
    assert result.mode == "full" and result.rows_total == result.rows_checked == 1000
    assert [a.name for a in result.assertions] == [
        "expect_table_row_count_to_equal",
        "expect_column_values_to_not_be_null",
        "expect_table_columns_to_match_ordered_list",
        "arrow_schema_types_match",
    ]
    assert by_name(result, "expect_table_row_count_to_equal").observed == 1000  # type: ignore[attr-defined]


def test_failing_row_count() -> None:
    data = csv_bytes(100)
    truncated = data[: data.rindex(b"\n", 0, -1) + 1]  # the last row lost
    result = check(BytesSource(data, "s3://a/t.csv"), BytesSource(truncated, "oss://b/t.csv"))
    assert not result.success
    failed = result.failures[0]
    assert (
        failed.name == "expect_table_row_count_to_equal" and failed.observed == 99 and failed.kwargs == {"value": 100}
    )
    assert "observed 99" in result.summary()


def test_removed_column() -> None:
    source = BytesSource(csv_bytes(50), "s3://a/t.csv")
    replica = BytesSource(csv_bytes(50, drop="name"), "cos://b/t.csv")
    result = check(source, replica, expectations=[NOT_NULL_ID])
    names = {a.name for a in result.failures}
    assert names == {"expect_table_columns_to_match_ordered_list", "arrow_schema_types_match"}
    assert by_name(result, "expect_table_columns_to_match_ordered_list").observed == ["id", "amount"]  # type: ignore[attr-defined]
    assert by_name(result, "arrow_schema_types_match").observed == {"name": "missing (expected string)"}  # type: ignore[attr-defined]


def test_changed_type_is_reported() -> None:
    source = pa.table({"id": [1, 2], "v": [1.0, 2.0]})
    replica = pa.table({"id": ["1", "2"], "v": [1.0, 2.0]})
    result = run_suite([replica], expected_schema=source.schema)
    assert by_name(result, "arrow_schema_types_match").observed == {"id": "string (expected int64)"}  # type: ignore[attr-defined]
    assert not result.success


def test_user_expectation_failing_over_chunks() -> None:
    data = csv_bytes(1000, null_at=777)
    between = {"expectation": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "max_value": 1200}}
    result = validate_source(BytesSource(data, "s3://a/t.csv"), expectations=[NOT_NULL_ID, between], chunk_rows=300)
    assert not result.success and result.chunks == 4
    nulls, big = result.assertions
    assert nulls.observed["unexpected_count"] == 1 and nulls.observed["element_count"] == 1000
    assert nulls.detail == "failed in 1 of 4 chunks"
    assert big.observed["unexpected_count"] == 1000 - 801  # amounts above 1200: rows 801..999
    assert "expect_column_values_to_be_between" in result.summary()


def test_expectation_on_missing_column_reports_gx_error() -> None:
    declared = {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "nope"}}
    result = run_suite([pd.DataFrame({"id": [1]})], expectations=[declared])
    assert not result.success
    assert 'The column "nope"' in result.failures[0].detail


def test_unknown_expectation_and_bad_kwargs() -> None:
    with pytest.raises(ExpectationConfigError, match=r"unknown expectation 'expect_column_values_to_be_not_null'.*"):
        run_suite([], expectations=[{"expectation": "expect_column_values_to_be_not_null", "kwargs": {"column": "a"}}])
    with pytest.raises(ExpectationConfigError, match="did you mean expect_column_values_to_not_be_null"):
        build_expectation({"expectation": "expect_column_values_to_not_be_nul", "kwargs": {}})
    with pytest.raises(ExpectationConfigError, match=r"bad kwargs.*expect_column_values_to_not_be_null.*colum"):
        build_expectation({"expectation": "expect_column_values_to_not_be_null", "kwargs": {"colum": "id"}})
    with pytest.raises(ExpectationConfigError, match="unknown keys"):
        build_expectation({"expectation": "expect_column_values_to_not_be_null", "kwargs": {}, "kwarg": {}})
    with pytest.raises(MulticloudError, match="expect_"):
        build_expectation({"expectation": "column_values_to_not_be_null"})


def test_sample_mode_is_reported() -> None:
    frames = [pd.DataFrame({"id": range(i, i + 1000)}) for i in range(0, 10_000, 1000)]
    declared = {"expectation": "expect_column_values_to_be_between", "kwargs": {"column": "id", "min_value": 0}}
    result = run_suite(frames, expected_row_count=10_000, expectations=[declared], sample=500, chunk_rows=1000, seed=7)
    assert result.success, result.summary()
    assert result.mode == "sample of 500 rows" and result.rows_checked == 500 and result.rows_total == 10_000
    assert by_name(result, "expect_table_row_count_to_equal").observed == 10_000  # type: ignore[attr-defined]
    assert "sample of 500 rows" in result.summary()
    small = run_suite(frames[:1], expectations=[declared], sample=5000)
    assert small.mode == "full" and small.rows_checked == 1000


def test_sample_is_uniform_over_the_stream() -> None:
    from airflow_multicloud.validation.expectations import _Reservoir

    reservoir = _Reservoir(1000, seed=1)
    for i in range(0, 100_000, 7000):
        reservoir.add(pa.table({"id": range(i, min(i + 7000, 100_000))}))
    assert reservoir.table is not None
    ids = reservoir.table.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 1000
    assert 40_000 < sum(ids) / len(ids) < 60_000  # a head sample would average 500
    assert sum(i >= 90_000 for i in ids) > 50


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet", "csv.gz", "jsonl.gz"])
def test_load_every_format_matches_count(fmt: str) -> None:
    table = pa.table({"id": range(3000), "s": [f"x{i}" for i in range(3000)]})
    if fmt.startswith("csv") or fmt == "tsv":
        text = table.to_pandas().to_csv(index=False, sep="\t" if fmt == "tsv" else ",").encode()
    elif fmt.startswith("jsonl"):
        text = b"".join(json.dumps(r).encode() + b"\n" for r in table.to_pylist())
    else:
        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=1000)
        text = buf.getvalue()
    if fmt.endswith(".gz"):  # two gzip members, as appended logs produce
        text = gzip.compress(text[:1000]) + gzip.compress(text[1000:])
    source = CountingSource(BytesSource(text, f"s3://b/t.{fmt}", chunk_size=4096))
    result = validate_source(source, expected_row_count=count_rows(source).rows, expected_schema=table.schema)
    assert result.success, result.summary()
    assert result.rows_total == 3000


def test_header_only_and_empty_csv() -> None:
    header_only = BytesSource(b"id,name\n", "s3://b/t.csv")
    result = validate_source(header_only, expected_row_count=0, expectations=[NOT_NULL_ID])
    assert result.success and result.rows_total == 0
    empty = validate_source(BytesSource(b"", "s3://b/e.csv"), expected_row_count=0, expectations=[NOT_NULL_ID])
    assert empty.success and empty.assertions[1].detail == "not evaluated: no rows"


def test_corrupt_parquet_load_names_object() -> None:
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": range(100)}), buf)
    with pytest.raises(RowCountError, match=r"s3://b/t\.parquet: cannot read as parquet"):
        list(load_batches(BytesSource(buf.getvalue()[:-10], "s3://b/t.parquet")))


def test_no_progress_bars(capfd: pytest.CaptureFixture[str]) -> None:
    run_suite([pd.DataFrame({"id": [1, 2]})], expectations=[NOT_NULL_ID])
    out, err = capfd.readouterr()
    assert "Calculating Metrics" not in out + err


def test_chunks_are_exact_and_bounded() -> None:
    batches = [pa.record_batch({"id": list(range(i, i + 250))}) for i in range(0, 1000, 250)]
    result = run_suite(batches, expected_row_count=1000, expectations=[NOT_NULL_ID], chunk_rows=400)
    assert result.success and result.chunks == 3 and result.rows_checked == 1000  # 400 + 400 + 200
    result = run_suite(batches, expectations=[NOT_NULL_ID], chunk_rows=500)
    assert result.chunks == 2  # an exact multiple leaves no empty trailing chunk


def test_unreadable_text_names_object() -> None:
    with pytest.raises(RowCountError, match=r"s3://b/x\.csv\.gz: not valid gzip"):
        list(load_batches(BytesSource(b"garbage", "s3://b/x.csv.gz")))
    with pytest.raises(RowCountError, match=r"s3://b/t\.csv: cannot read as csv: .*column_types="):
        list(load_batches(BytesSource(b"a\n" + b"1\n" * 100 + b"x\n", "s3://b/t.csv"), block_size=64))
    rows = load_batches(
        BytesSource(b"a\n" + b"1\n" * 100 + b"x\n", "s3://b/t.csv"), block_size=64, column_types={"a": pa.string()}
    )
    assert sum(b.num_rows for b in rows) == 101
