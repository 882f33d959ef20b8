from __future__ import annotations

import gzip
import io
import random
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from airflow_multicloud.errors import MulticloudError
from airflow_multicloud.validation.rows import Format, RowCountError, count_rows, detect_format, gunzip
from airflow_multicloud.validation.sources import (
    BytesSource,
    ChunkStream,
    CountingSource,
    RangeFile,
    source_from_store,
)

CHUNKS = [1, 2, 3, 5, 7, 64, 1 << 20]


def rows(data: bytes, fmt: str = "csv", chunk_sizes: list[int] = CHUNKS, **kw: Any) -> int:
    """Count with every chunk size and insist they agree: a boundary split anywhere must not matter."""
    counts = {n: count_rows(BytesSource(data, f"mem://t.{fmt}", chunk_size=n), fmt, **kw).rows for n in chunk_sizes}
    assert len(set(counts.values())) == 1, counts
    return counts[chunk_sizes[0]]


# ---- format detection ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a/b.csv", "csv"),
        ("B.CSV", "csv"),
        ("x.tsv", "tsv"),
        ("x.jsonl", "jsonl"),
        ("x.ndjson", "jsonl"),
        ("x.json", "jsonl"),
        ("x.parquet", "parquet"),
        ("x.pq", "parquet"),
        ("dir.v2/x.csv.gz", "csv.gz"),
        ("x.tsv.gz", "tsv.gz"),
        ("x.jsonl.gz", "jsonl.gz"),
        ("x.ndjson.gz", "jsonl.gz"),
    ],
)
def test_detect_format(key: str, expected: str) -> None:
    assert str(detect_format(key)) == expected
    assert Format.parse(expected) == detect_format(key)


@pytest.mark.parametrize("key", ["data/x.txt", "x.gz", "x", "x.parquet.gz", "dir.csv/x"])
def test_unknown_extension_names_key(key: str) -> None:
    with pytest.raises(RowCountError, match="format=") as err:
        detect_format(key)
    assert key in str(err.value)
    assert isinstance(err.value, MulticloudError)


# ---- CSV / TSV -----------------------------------------------------------------------------------------
def test_plain_csv() -> None:
    assert rows(b"a,b\n1,2\n3,4\n") == 2
    assert rows(b"a,b\n1,2\n3,4\n", header=False) == 3


def test_quoted_newlines_where_line_count_is_wrong() -> None:
    data = b'id,text\n1,"line one\nline two\nline three"\n2,"a,b"\n3,plain\n'
    assert data.count(b"\n") - 1 == 5  # what a naive line count would say
    assert rows(data) == 3


def test_doubled_quotes_and_delimiters_in_quotes() -> None:
    data = b'a,b\n"he said ""hi""\nthen left",2\n"""",3\n"x,""y""",4\n'
    assert rows(data) == 3


def test_crlf_bom_no_trailing_newline() -> None:
    assert rows(b"a,b\r\n1,2\r\n3,4\r\n") == 2
    assert rows(b"\xef\xbb\xbfa,b\r\n1,2\r\n3,4") == 2
    assert rows(b"\xef\xbb\xbfa\n", header=False) == 1
    assert rows(b"\xef\xbb\xbf", header=False) == 0
    assert rows(b'a,b\n1,"x\r\ny"') == 1


def test_empty_header_only_blank_lines() -> None:
    assert rows(b"") == 0
    assert rows(b"", header=False) == 0
    assert rows(b"a,b\n") == 0
    assert rows(b"a,b") == 0
    assert rows(b"a,b\r\n") == 0
    assert rows(b"a,b\n1,2\n\n") == 1
    assert rows(b"a,b\r\n1,2\r\n\r\n\r\n") == 1
    assert rows(b"\n\na,b\n\n1,2\n\n\n3,4\n\n") == 2
    assert rows(b"\n\n\n", header=False) == 0
    assert rows(b'a\n""\n', header=False) == 2  # an empty quoted field is a row, not a blank line


def test_tsv() -> None:
    assert rows(b'a\tb\n1\t2\n3\t"x\ny"\n', "tsv") == 2
    assert rows(b"a\tb\n1\t2\n", "tsv.gz" and "tsv") == 1


def test_unterminated_quote_is_an_error() -> None:
    with pytest.raises(RowCountError, match=r"mem://t\.csv.*not closed"):
        count_rows(BytesSource(b'a,b\n1,"open\n2,3\n', "mem://t.csv"))


def test_stray_quote_is_reported_or_ignored_on_request() -> None:
    data = b'a,b\n5" pipe,3\n6" pipe,4\n'
    with pytest.raises(RowCountError, match="quotechar=None"):
        count_rows(BytesSource(data, "mem://t.csv"))
    assert rows(data, quotechar=None) == 2
    with pytest.raises(RowCountError, match="RFC 4180"):
        count_rows(BytesSource(b'a\n"x\n"y\n', "mem://t.csv"))
    # Reported even where stray quotes pair up within a line, so the answer never depends on chunking.
    for data in (b'a,b\n5" x 3" board,1\n', b'a,b\n"x"y,2\n', b'a,b\n"x",2\n"y"z,3\n', b'a\n"x"\ny\n"z" \n'):
        for size in CHUNKS:
            with pytest.raises(RowCountError, match="RFC 4180"):
                count_rows(BytesSource(data, "mem://t.csv", chunk_size=size))
    assert rows(b'a,b\n5" x 3" board,1\n"x"y,2\n', quotechar=None) == 2


def test_invalid_utf8_names_object_and_offset() -> None:
    with pytest.raises(RowCountError, match=r"mem://t\.csv: not valid utf-8 near byte 6"):
        count_rows(BytesSource(b"a,b\n1,\xff\n", "mem://t.csv", chunk_size=3))
    with pytest.raises(RowCountError, match="multi-byte"):
        count_rows(BytesSource(b"a,b\n1,\xc3", "mem://t.csv"))
    assert count_rows(BytesSource(b"a,b\n1,\xff\n", "mem://t.csv"), encoding=None).rows == 1
    assert rows("a,b\n1,é\n2,€\n".encode(), chunk_sizes=[1, 2, 64]) == 2  # split multi-byte characters are fine


def random_csv(rng: random.Random, n: int, *, crlf: bool, trailing: bool, blanks: bool) -> bytes:
    nl = "\r\n" if crlf else "\n"
    pieces = ["x", "hello world", "", "a,b", 'say "hi"', "multi\nline", "cr\r\nlf", '"', "12", '""']
    out = ["id,val,note"]
    for i in range(n):
        note = rng.choice(pieces)
        quoted = any(c in note for c in ',"\r\n') or rng.random() < 0.3
        note = '"' + note.replace('"', '""') + '"' if quoted else note
        val = '"' + rng.choice(pieces).replace('"', '""') + '"'
        out.append(f"{i},{val},{note}")
        if blanks and rng.random() < 0.1:
            out.append("")
    text = nl.join(out) + (nl if trailing else "")
    return text.encode()


@pytest.mark.parametrize("seed", range(12))
def test_random_csv_matches_pyarrow(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(0, 60)
    data = random_csv(rng, n, crlf=seed % 2 == 0, trailing=seed % 3 != 0, blanks=seed % 3 == 1)
    data = b"\xef\xbb\xbf" + data if seed % 5 == 0 else data
    opts = pacsv.ParseOptions(newlines_in_values=True)
    expected = pacsv.read_csv(pa.BufferReader(data), parse_options=opts).num_rows
    assert expected == n
    assert rows(data, chunk_sizes=[1, 2, 3, 4, 5, 8, 13, 1000]) == n


# ---- JSON Lines ----------------------------------------------------------------------------------------
def test_jsonl_blank_lines_and_no_trailing_newline() -> None:
    data = b'{"a": 1}\n\n{"a": "x\\ny"}\r\n   \n{"a": 3}'
    assert rows(data, "jsonl") == 3
    assert rows(data, "jsonl", strict=True) == 3
    assert rows(b"", "jsonl") == 0
    assert rows(b"\n\n", "jsonl") == 0
    assert rows(b'{"a":1}\n', "jsonl") == 1


def test_jsonl_strict_names_line() -> None:
    data = b'{"a": 1}\n\n{"a": 2}\n{"a": \n'
    assert rows(data, "jsonl") == 3  # counting alone does not parse every line
    with pytest.raises(RowCountError, match=r"mem://t\.jsonl: line 4 is not valid JSON"):
        count_rows(BytesSource(data, "mem://t.jsonl", chunk_size=3), strict=True)


def test_pretty_printed_json_document_is_reported() -> None:
    with pytest.raises(RowCountError, match="JSON document rather than JSON Lines"):
        count_rows(BytesSource(b'{\n  "a": 1\n}\n', "mem://t.json"))


# ---- gzip ----------------------------------------------------------------------------------------------
def test_gzip_csv_and_multi_member_jsonl() -> None:
    csv_data = b'a,b\n1,"x\ny"\n' + b"2,3\n" * 1000
    assert rows(gzip.compress(csv_data), "csv.gz", chunk_sizes=[1, 7, 1 << 20]) == 1001
    member = b'{"a": 1}\n{"a": 2}\n'
    multi = gzip.compress(member) + gzip.compress(member) + gzip.compress(b"") + gzip.compress(b'{"a": 3}')
    assert rows(multi, "jsonl.gz", chunk_sizes=[1, 3, 1 << 20]) == 5
    assert rows(multi + b"\0" * 16, "jsonl.gz", chunk_sizes=[1, 1 << 20]) == 5


def test_gzip_output_is_bounded() -> None:
    bomb = gzip.compress(b"1,2\n" * 3_000_000)  # 12 MB out of a few KB
    sizes = [len(c) for c in gunzip(BytesSource(bomb).read(0, None), "bomb")]
    assert sum(sizes) == 12_000_000 and max(sizes) <= 1 << 20


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"this is not gzip", "not valid gzip"),
        (gzip.compress(b"a,b\n1,2\n" * 100)[:-20], "ends early"),
    ],
    # named, not derived from the bytes: a gzip header holds the time, and xdist workers must collect the same ids
    ids=["not-gzip", "truncated"],
)
def test_corrupt_gzip_names_object(data: bytes, reason: str) -> None:
    with pytest.raises(RowCountError, match=rf"s3://b/x\.csv\.gz: .*{reason}"):
        count_rows(BytesSource(data, "s3://b/x.csv.gz", chunk_size=5))


# ---- Parquet -------------------------------------------------------------------------------------------
def parquet_bytes(n: int, row_group_size: int) -> bytes:
    table = pa.table({"id": range(n), "name": [f"name-{i:08d}" for i in range(n)], "v": [i * 0.5 for i in range(n)]})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size, compression="none")
    return buf.getvalue()


def test_parquet_reads_footer_only() -> None:
    data = parquet_bytes(200_000, 25_000)
    assert len(data) > 3_000_000
    src = CountingSource(BytesSource(data, "cos://b/t.parquet"))
    result = count_rows(src)
    assert result.rows == 200_000
    assert "8 row groups" in result.detail
    assert result.bytes_read == src.bytes_read <= len(data) // 100
    assert src.requests == 1


def test_parquet_large_footer_takes_a_second_read() -> None:
    table = pa.table({f"column_with_a_long_name_{i}": [i] for i in range(300)})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    src = CountingSource(BytesSource(buf.getvalue(), "oss://b/wide.pq"))
    assert count_rows(src).rows == 1
    assert src.requests == 2


@pytest.mark.parametrize(
    "cut", [lambda d: d[: len(d) // 2], lambda d: d[:8], lambda d: d[:-1], lambda d: b"x" + d[-5:]]
)
def test_truncated_parquet_names_object(cut: object) -> None:
    data = cut(parquet_bytes(1000, 100))  # type: ignore[operator]
    with pytest.raises(RowCountError, match=r"s3://b/t\.parquet: .*(truncated|short|Parquet)"):
        count_rows(BytesSource(data, "s3://b/t.parquet"))


def test_corrupt_parquet_footer() -> None:
    data = bytearray(parquet_bytes(1000, 100))
    footer_len = int.from_bytes(data[-8:-4], "little")
    data[-8 - footer_len : -8 - footer_len + 20] = b"\xff" * 20
    with pytest.raises(RowCountError, match=r"s3://b/t\.parquet: unreadable Parquet footer"):
        count_rows(BytesSource(bytes(data), "s3://b/t.parquet"))


def test_rangefile_lets_pyarrow_read_footer_with_few_small_reads() -> None:
    data = parquet_bytes(200_000, 25_000)
    src = CountingSource(BytesSource(data, "s3://b/t.parquet"))
    meta = pq.ParquetFile(RangeFile(src, block_size=64 * 1024)).metadata
    assert meta.num_rows == 200_000
    assert src.requests <= 3 and src.bytes_read <= 3 * 64 * 1024


def test_rangefile_file_semantics() -> None:
    f = RangeFile(BytesSource(bytes(range(256)) * 4, chunk_size=3), block_size=10)
    assert f.read(4) == bytes([0, 1, 2, 3])
    assert f.seek(-2, io.SEEK_END) == 1022 and f.read() == bytes([254, 255]) and f.read() == b""
    f.seek(250)
    buf = bytearray(12)
    assert f.readinto(buf) == 12 and bytes(buf) == bytes([*range(250, 256), *range(6)])
    assert f.tell() == 262
    with pytest.raises(OSError):
        f.seek(-1)


def test_stray_quote_error_gives_exact_offset() -> None:
    for size in (1, 4, 1 << 20):
        with pytest.raises(RowCountError, match="near byte 5:"):
            count_rows(BytesSource(b'a,b\n5" pipe,3\n', "mem://t.csv", chunk_size=size))


def test_bad_arguments() -> None:
    src = BytesSource(b"a\n", "mem://t.csv")
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        count_rows(src, "xml")
    with pytest.raises(ValueError, match="not ASCII-compatible"):
        count_rows(src, encoding="utf-16")
    with pytest.raises(ValueError, match="one character"):
        count_rows(src, delimiter="::")


class FakeStore:
    """Just what source_from_store uses of an ObjectStore: head, read and uri."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.heads = 0
        self.reads: list[tuple[int, int | None]] = []

    def uri(self, key: str) -> str:
        return f"fake://bucket/{key}"

    def head(self, key: str) -> object:
        self.heads += 1
        return type("Info", (), {"size": len(self.data)})()

    def read(self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1) -> Iterator[bytes]:
        self.reads.append((start, end))
        stop = len(self.data) if end is None else end
        for pos in range(start, stop, chunk_size):
            yield self.data[pos : min(pos + chunk_size, stop)]


def test_source_from_store_heads_only_without_size() -> None:
    store = FakeStore(b"id\n1\n2\n")
    src = source_from_store(store, "t.csv", chunk_size=2)  # type: ignore[arg-type]
    assert store.heads == 1 and src.size == 7 and src.name == "fake://bucket/t.csv"
    assert count_rows(src).rows == 2
    assert source_from_store(store, "t.csv", size=7).size == 7 and store.heads == 1  # type: ignore[arg-type]
    assert b"".join(src.read(3, 100)) == b"1\n2\n" and list(src.read(7, None)) == []
    assert store.reads[-1] == (3, 7)  # clipped to the object, and no request for an empty range


def test_chunk_stream_reads_across_chunks() -> None:
    stream = ChunkStream([b"ab", b"", b"cde", b"f"], "s")
    assert stream.read(3) == b"abc" and stream.read(1) == b"d"
    buf = bytearray(5)
    assert stream.readinto(buf) == 2 and bytes(buf[:2]) == b"ef"
    assert stream.read(4) == b"" and stream.tell() == 6
