"""Count the rows of a CSV, TSV, JSON Lines or Parquet object by streaming it in bounded memory.

Counting runs over every replica, so it never loops over bytes in Python. A chunk without a quote is
counted with ``bytes.count`` (or skipped, when it lies inside a quoted field). In a chunk with quotes, numpy
finds the quote and newline positions; the n-th quote alternately opens and closes a field (a doubled quote
closes and reopens), so a newline is inside quotes when an odd number of quotes precedes it. The state
carried across chunks is "inside quotes", "the current line is blank so far" and the previous byte, so a
CRLF, a doubled quote or a multi-byte character may be split anywhere.

Quotes follow RFC 4180: a quote inside an unquoted field (``5" pipe``) or text after a closing quote is
reported, not guessed at; ``quotechar=None`` counts such files line by line. Blank lines are not rows, as
in pyarrow's readers (``ignore_empty_lines``): for CSV a line that is empty or just ``\\r``; for JSON Lines
a line of only spaces, tabs or ``\\r``.
"""

from __future__ import annotations

import codecs
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from airflow_multicloud.errors import MulticloudError
from airflow_multicloud.validation.sources import RangeSource, counting

Kind = Literal["csv", "tsv", "jsonl", "parquet"]
_EXTENSIONS: dict[str, Kind] = {
    "csv": "csv",
    "tsv": "tsv",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json": "jsonl",
    "parquet": "parquet",
    "pq": "parquet",
}
_BOM = codecs.BOM_UTF8
_PARQUET_TAIL = 8 * 1024  # one read usually holds the footer of a file with a few columns and row groups
_FIRST_LINE_LIMIT = 16 * 1024 * 1024  # JSON Lines: the first line is parsed when it is shorter than this
_GZIP_OUT = 1024 * 1024  # most decompressed bytes held at once, whatever the compression ratio


class RowCountError(MulticloudError):
    """An object could not be parsed as its format; the message names the object and the parser's reason."""


@dataclass(frozen=True)
class Format:
    """A file format and its compression (only ``"gzip"``, only for the text formats)."""

    kind: Kind
    compression: Literal["gzip"] | None = None

    def __str__(self) -> str:
        return self.kind + (".gz" if self.compression else "")

    @classmethod
    def parse(cls, text: str | Format) -> Format:
        """``"csv"``, ``"tsv.gz"``, ``"jsonl"``, ``"parquet"``... (the same names as file extensions)."""
        if isinstance(text, Format):
            return text
        name = text.lower().lstrip(".")
        gz = name.endswith((".gz", ".gzip"))
        base = name.rsplit(".", 1)[0] if gz else name
        kind = _EXTENSIONS.get(base)
        if kind is None or (gz and kind == "parquet"):
            known = ", ".join(sorted({*_EXTENSIONS, *(f"{k}.gz" for k in _EXTENSIONS if _EXTENSIONS[k] != "parquet")}))
            raise ValueError(f"unknown format {text!r}; known formats: {known}")
        return cls(kind, "gzip" if gz else None)


def detect_format(key: str) -> Format:
    """The format implied by ``key``'s extension, e.g. ``data/part-0001.csv.gz`` -> csv, gzip."""
    name = key.rsplit("/", 1)[-1].lower()
    parts = name.split(".")
    gz = len(parts) > 2 and parts[-1] in ("gz", "gzip")
    ext = parts[-2] if gz else parts[-1] if len(parts) > 1 else ""
    kind = _EXTENSIONS.get(ext)
    if kind is None or (gz and kind == "parquet"):
        raise RowCountError(
            f"cannot tell the format of {key!r} from its extension; set format= explicitly "
            "(csv, tsv, jsonl, parquet, or csv.gz, tsv.gz, jsonl.gz)"
        )
    return Format(kind, "gzip" if gz else None)


@dataclass(frozen=True)
class RowCount:
    """``rows`` excludes a header and blank lines; ``bytes_read`` is what was read from the store."""

    rows: int
    bytes_read: int
    format: Format
    detail: str


# ---- byte-stream helpers -------------------------------------------------------------------------------
def gunzip(chunks: Iterable[bytes], name: str) -> Iterator[bytes]:
    """Decompress gzip (also concatenated members, as ``cat a.gz b.gz`` makes) without holding the output."""
    dec = zlib.decompressobj(wbits=47)  # 32 + 15: accept a gzip or zlib header
    started = False
    try:
        for chunk in chunks:
            data = chunk
            while data:
                if dec.eof:  # the next member starts in the unused tail of the previous one
                    if not data.strip(b"\0"):  # zero padding after the last member, as gzip(1) tolerates
                        break
                    dec = zlib.decompressobj(wbits=47)
                started = True
                out = dec.decompress(data, _GZIP_OUT)
                if out:
                    yield out
                data = dec.unconsumed_tail or (dec.unused_data if dec.eof else b"")
        tail = dec.flush()
        if tail:
            yield tail
    except zlib.error as exc:
        raise RowCountError(f"{name}: not valid gzip data: {exc}") from exc
    if started and not dec.eof:
        raise RowCountError(f"{name}: gzip stream ends early (truncated object?)")


def _strip_bom(chunks: Iterable[bytes]) -> Iterator[bytes]:
    it = iter(chunks)
    head = b""
    for chunk in it:  # a BOM may arrive split over tiny chunks: gather 3 bytes first
        head += chunk
        if len(head) >= len(_BOM):
            break
    yield head[len(_BOM) :] if head.startswith(_BOM) else head
    yield from it


def _check_encoding(chunks: Iterable[bytes], encoding: str, name: str) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    for chunk in chunks:
        # ASCII is valid in every encoding allowed here; only decode when needed (pending bytes or non-ASCII).
        if not chunk.isascii() or decoder.getstate()[0]:
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                pos = offset - len(decoder.getstate()[0]) + exc.start
                raise RowCountError(f"{name}: not valid {encoding} near byte {max(pos, 0)}: {exc.reason}") from exc
        offset += len(chunk)
        yield chunk
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise RowCountError(f"{name}: not valid {encoding}: ends inside a multi-byte character") from exc


# ---- line and record counting --------------------------------------------------------------------------
class _RecordCounter:
    """Counts records (non-blank lines; with ``quote``, newlines inside quoted fields do not end a record)."""

    def __init__(self, name: str, *, quote: bytes | None, delimiter: bytes, blank_ws: bytes) -> None:
        self.name = name
        self.quote = quote
        self.newlines = 0
        self.blanks = 0
        self.in_quotes = False
        self.line_blank = True  # nothing but blank_ws since the last newline (or the start)
        self.prev = b"\n"  # the last byte seen; the start behaves like the byte after a newline
        self.offset = 0
        self.blank_ws = blank_ws
        ws_class = b"".join(b"\\" + bytes([c]) if c in b"\\]^-" else bytes([c]) for c in blank_ws)
        self._blank_re = re.compile(rb"\n[" + ws_class + rb"]*(?=\n)")
        self._blank_probes = [b"\n" + bytes([c]) for c in b"\n" + blank_ws]
        # RFC 4180: a quote opens a field only at its start and closes it only at its end (or doubles itself).
        self._field_edge = b"\n\r" + delimiter + (quote or b"")

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.quote is None or self.quote not in chunk:
            if not self.in_quotes:  # else the whole chunk is inside one quoted field: no record ends here
                self._check_after_close(chunk)
                self._count(chunk)
        else:
            self._check_after_close(chunk)
            self._count_quoted(chunk)
        self.offset += len(chunk)
        self.prev = chunk[-1:]

    def _check_after_close(self, text: bytes) -> None:
        if self.prev == self.quote and not self.in_quotes and text[0] not in self._field_edge:
            self._malformed(self.offset)

    def _malformed(self, pos: int) -> None:
        raise RowCountError(
            f"{self.name}: a quote inside an unquoted field or text after a closing quote near byte {pos}: "
            "not RFC 4180 CSV; quotechar=None counts such a file without quote handling"
        )

    def _count_quoted(self, chunk: bytes) -> None:
        """Quote and newline positions come from numpy at memory speed; only their order is reasoned about."""
        import numpy as np

        assert self.quote is not None
        data = np.frombuffer(chunk, dtype=np.uint8)
        quotes = np.flatnonzero(data == self.quote[0])
        start = int(self.in_quotes)  # the first quote of the chunk closes a field when it starts inside one
        edge = np.zeros(256, dtype=bool)
        edge[list(self._field_edge)] = True
        openers, closers = quotes[start::2], quotes[1 - start :: 2]
        left = np.where(openers > 0, data[np.maximum(openers - 1, 0)], self.prev[0])
        right = data[np.minimum(closers + 1, len(data) - 1)]  # a quote last in the chunk: see _check_after_close
        bad = np.concatenate([openers[~edge[left]], closers[(closers + 1 < len(data)) & ~edge[right]]])
        if len(bad):
            self._malformed(self.offset + int(bad.min()))
        newlines = np.flatnonzero(data == 10)
        # A newline is outside quotes when an even number of quotes (counting the open one) comes before it.
        outside = newlines[(np.searchsorted(quotes, newlines) + start) % 2 == 0]
        if len(outside):
            # A blank line: nothing between two newlines outside quotes, or only "\r".
            starts = np.concatenate([[-1], outside[:-1]]) + 1
            length = outside - starts
            blank = (length == 0) | ((length == 1) & (data[np.maximum(outside - 1, 0)] == 13))  # CSV: "\r" only
            blank[0] = self.line_blank and self._is_blank(chunk[: outside[0]])
            self.blanks += int(blank.sum())
            self.newlines += len(outside)
        self.in_quotes = (len(quotes) + start) % 2 == 1
        tail = chunk[outside[-1] + 1 :] if len(outside) else chunk
        self.line_blank = not self.in_quotes and (self.line_blank or len(outside) > 0) and self._is_blank(tail)

    def _is_blank(self, text: bytes) -> bool:
        return not text.strip(self.blank_ws) if self.blank_ws else not text

    def _count(self, text: bytes) -> None:
        n = text.count(b"\n")
        if n == 0:
            self.line_blank = self.line_blank and self._is_blank(text)
            return
        self.newlines += n
        first = text.find(b"\n")
        if self.line_blank and self._is_blank(text[:first]):
            self.blanks += 1
        # The regex only runs on text that may hold a blank line; most chunks hold none. A probe for "\n\r"
        # (or "\n ") is skipped when the text has no "\r" (" "): that memchr is far faster than the probe.
        if any(p in text for p in self._blank_probes if p[1] == 10 or p[1:] in text):
            self.blanks += len(self._blank_re.findall(text))
        self.line_blank = self._is_blank(text[text.rfind(b"\n") + 1 :])

    def finish(self) -> int:
        if self.in_quotes:
            raise RowCountError(f"{self.name}: a quoted field is not closed before the end of the object")
        return self.newlines - self.blanks + (0 if self.line_blank else 1)


def _json_lines_strict(chunks: Iterable[bytes], name: str, encoding: str) -> tuple[int, int]:
    """Parse every line; returns (rows, blank lines). Lines of whitespace only are blank, as for pyarrow."""
    rows = blanks = lineno = 0
    partial: list[bytes] = []  # pieces of a line longer than a chunk: joined once, not re-copied per chunk

    def check(line: bytes) -> None:
        nonlocal rows, blanks, lineno
        lineno += 1
        text = line.strip(b" \t\r")
        if not text:
            blanks += 1
            return
        try:
            json.loads(text.decode(encoding))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            raise RowCountError(f"{name}: line {lineno} is not valid JSON: {exc}") from exc
        rows += 1

    for chunk in chunks:
        if b"\n" not in chunk:
            partial.append(chunk)
            continue
        lines = chunk.split(b"\n")
        lines[0] = b"".join([*partial, lines[0]])
        partial = [lines.pop()]
        for line in lines:
            check(line)
    last = b"".join(partial)
    if last:  # text after the last newline is a line only when there is some
        check(last)
    return rows, blanks


def _first_line_is_json(chunks: Iterable[bytes], name: str) -> Iterator[bytes]:
    """Pass chunks through, parsing the first non-blank line: a pretty-printed JSON document (not JSON Lines)
    is then reported instead of being counted as one row per line."""
    head = b""
    checked = False
    for chunk in chunks:
        if not checked:
            head += chunk
            complete = [ln for ln in head.split(b"\n")[:-1] if ln.strip()]
            if complete:
                _parse_first(complete[0], name)
            if complete or len(head) > _FIRST_LINE_LIMIT:  # do not hold an endless first line
                checked, head = True, b""
        yield chunk
    if not checked and head.strip():
        _parse_first(head, name)


def _parse_first(line: bytes, name: str) -> None:
    try:
        json.loads(line)
    except ValueError as exc:
        raise RowCountError(
            f"{name}: the first line is not a JSON value ({exc}); is this a JSON document rather than JSON Lines?"
        ) from exc


# ---- Parquet -------------------------------------------------------------------------------------------
def _parquet_rows(source: RangeSource) -> tuple[int, str]:
    """Rows from the footer alone: read the last bytes, then the footer if it is longer than that."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    size = source.size
    if size < 12:
        raise RowCountError(f"{source.name}: {size} bytes is too short for a Parquet file (truncated?)")
    tail_len = min(size, _PARQUET_TAIL)
    tail = b"".join(source.read(size - tail_len, size))
    if tail[-4:] == b"PARE":
        raise RowCountError(f"{source.name}: Parquet with an encrypted footer cannot be counted")
    if tail[-4:] != b"PAR1":
        raise RowCountError(f"{source.name}: does not end with the Parquet magic PAR1 (truncated or not Parquet)")
    footer_len = int.from_bytes(tail[-8:-4], "little")
    if footer_len + 12 > size:
        raise RowCountError(f"{source.name}: Parquet footer length {footer_len} exceeds the object (truncated?)")
    if footer_len + 8 > len(tail):
        tail = b"".join(source.read(size - 8 - footer_len, size - tail_len)) + tail
    # read_metadata wants a whole file; the leading magic plus the footer is one as far as metadata goes.
    try:
        meta = pq.read_metadata(pa.BufferReader(b"PAR1" + tail[-(footer_len + 8) :]))
    except (pa.ArrowException, OSError) as exc:
        raise RowCountError(f"{source.name}: unreadable Parquet footer: {exc}") from exc
    return meta.num_rows, f"parquet footer of {footer_len} bytes, {meta.num_row_groups} row groups"


# ---- entry point ---------------------------------------------------------------------------------------
def count_rows(
    source: RangeSource,
    fmt: Format | str | None = None,
    *,
    header: bool = True,
    delimiter: str | None = None,
    encoding: str | None = "utf-8",
    quotechar: str | None = '"',
    strict: bool = False,
) -> RowCount:
    """Count data rows of ``source``, reading it once from start to end (Parquet: the footer only).

    :param fmt: a :class:`Format` or its name; by default from the extension of ``source.name``.
    :param header: CSV/TSV: the first non-blank record is a header, not a row.
    :param delimiter: CSV/TSV field separator (default ``,`` or tab); only used to check quoting.
    :param encoding: the text encoding to check (any ASCII-compatible one); ``None`` skips the check.
    :param quotechar: ``None`` counts lines, for non-RFC 4180 files with stray quotes.
    :param strict: JSON Lines: parse every line and report the first that is not JSON.
    :raises RowCountError: the object cannot be parsed as ``fmt``.
    """
    form = Format.parse(fmt) if fmt is not None else detect_format(source.name)
    src = counting(source)
    if form.kind == "parquet":
        rows, detail = _parquet_rows(src)
        return RowCount(rows, src.bytes_read, form, detail)
    if encoding is not None and ("\n".encode(encoding) != b"\n" or '"'.encode(encoding) != b'"'):
        raise ValueError(f"encoding {encoding!r} is not ASCII-compatible; byte-level counting needs one that is")
    chunks: Iterable[bytes] = src.read(0, None)
    if form.compression == "gzip":
        chunks = gunzip(chunks, src.name)
    chunks = _strip_bom(chunks)
    if encoding is not None:
        chunks = _check_encoding(chunks, encoding, src.name)
    if form.kind == "jsonl":
        if strict:
            rows, blanks = _json_lines_strict(chunks, src.name, encoding or "utf-8")
            return RowCount(rows, src.bytes_read, form, f"{rows} JSON lines parsed, {blanks} blank lines")
        counter = _RecordCounter(src.name, quote=None, delimiter=b"", blank_ws=b" \t\r")
        for chunk in _first_line_is_json(chunks, src.name):
            counter.feed(chunk)
        rows = counter.finish()
        return RowCount(rows, src.bytes_read, form, f"{rows} non-blank lines, {counter.blanks} blank")
    delim = delimiter or ("\t" if form.kind == "tsv" else ",")
    if len(delim) != 1 or (quotechar is not None and len(quotechar) != 1):
        raise ValueError("delimiter and quotechar must be one character each")
    quote = quotechar.encode("ascii") if quotechar else None
    counter = _RecordCounter(src.name, quote=quote, delimiter=delim.encode("ascii"), blank_ws=b"\r")
    for chunk in chunks:
        counter.feed(chunk)
    records = counter.finish()
    rows = max(records - 1, 0) if header else records
    detail = f"{records} records ({'header + ' if header and records else ''}{rows} rows), {counter.blanks} blank"
    return RowCount(rows, src.bytes_read, form, detail)
