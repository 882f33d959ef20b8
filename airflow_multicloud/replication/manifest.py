"""Manifests written next to each replica: what each run copied, skipped, failed or deleted, with checksums.

Format and retention are described in docs/manifests.md. In short: gzip-compressed JSON Lines, a header line then
one line per object record, under ``<destination prefix><manifest_dir>``, named so that names sort by time. A run
writes only what it changed (a skip resting on an earlier verified record is already in the chain); every so
often a *consolidated* manifest merges the chain into one key-sorted manifest, and the ones it covers are pruned.
The verified record of each key is the newest one in the chain: the newest consolidated manifest and the run
manifests after it, read as streams.
"""

from __future__ import annotations

import codecs
import gzip
import heapq
import json
import logging
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import IO, Any

from airflow_multicloud.errors import StoreError
from airflow_multicloud.replication.model import Location, ObjectResult, SourceObject
from airflow_multicloud.stores.base import ObjectStore

log = logging.getLogger(__name__)

DEFAULT_MANIFEST_DIR = "_multicloud/manifests/"
VERIFIED = ("copied", "skipped")
DELETED = "deleted"  # a mirror removed the key: older records of it no longer describe the replica
SUFFIX = ".jsonl.gz"
LEGACY_SUFFIX = ".jsonl"  # uncompressed manifests written before this format; still read
CONSOLIDATED = ".consolidated"
FORMAT_VERSION = 2
_CHUNK = 1 << 20


class Kind(StrEnum):
    RUN = "run"
    CONSOLIDATED = "consolidated"


def manifest_prefix(dest: Location, manifest_dir: str = DEFAULT_MANIFEST_DIR) -> str:
    return dest.prefix + manifest_dir


def is_manifest(key: str) -> bool:
    return key.endswith(SUFFIX) or key.endswith(LEGACY_SUFFIX)


def is_consolidated(key: str) -> bool:
    return key.endswith(CONSOLIDATED + SUFFIX)


def manifest_key(dest: Location, run_id: str, kind: Kind, manifest_dir: str = DEFAULT_MANIFEST_DIR) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    # no dots: a run id can never pass for the consolidated suffix
    safe_run = "".join(c if c.isalnum() or c in "-_" else "_" for c in run_id)[:80]
    tail = CONSOLIDATED if kind is Kind.CONSOLIDATED else ""
    return f"{manifest_prefix(dest, manifest_dir)}{stamp}-{safe_run}{tail}{SUFFIX}"


def manifest_record(obj: SourceObject, result: ObjectResult) -> dict[str, Any]:
    return {
        "key": obj.rel,
        "size": obj.size,
        "crc64": result.crc64,
        "md5": result.md5,
        "source_etag": obj.etag,
        "source_last_modified": obj.last_modified.isoformat() if obj.last_modified else None,
        "dest_etag": result.dest_etag,
        "status": result.status,
        "verified_by": result.verified_by,
        "source_proof": result.source_proof,
        "dest_last_modified": result.dest_last_modified,
        **({"error": result.error} if result.error else {}),
    }


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, sort_keys=True) + "\n").encode()


class ManifestWriter:
    """One manifest written as records arrive: compressed into a local spool file (bounded memory), then sent
    with :meth:`upload` as a stream (a multipart upload when large). The header goes first as its own gzip
    member, so it can carry the record counts and still be read without the rest."""

    def __init__(self, dest: Location, key: str, header: dict[str, Any]) -> None:
        self.dest, self.key, self.header = dest, key, header
        self.counts: dict[str, int] = {}
        self._spool: IO[bytes] = tempfile.TemporaryFile(prefix="multicloud-manifest-")  # noqa: SIM115
        self._gz = gzip.GzipFile(fileobj=self._spool, mode="wb", compresslevel=6)

    def add(self, record: dict[str, Any]) -> None:
        status = str(record.get("status"))
        self.counts[status] = self.counts.get(status, 0) + 1
        self._gz.write(_line({"type": "object", **record}))

    def add_line(self, line: bytes) -> None:
        """A record already serialised (a consolidation copies lines without parsing them twice)."""
        self.counts["records"] = self.counts.get("records", 0) + 1
        self._gz.write(line)

    def _chunks(self) -> Iterator[bytes]:
        header = {"type": "header", "format": FORMAT_VERSION, **self.header, "counts": self.counts}
        yield gzip.compress(_line(header))
        self._spool.seek(0)
        while chunk := self._spool.read(_CHUNK):
            yield chunk

    def upload(self) -> str:
        """Send the manifest (callable again: a retry re-reads the spool) and return its URI."""
        if not self._gz.closed:
            self._gz.close()
        self.dest.store.write(self.key, self._chunks(), content_type="application/gzip")
        return self.dest.store.uri(self.key)

    def close(self) -> None:
        if not self._gz.closed:
            self._gz.close()
        self._spool.close()


def _inflated(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The bytes of every gzip member in ``chunks``, in pieces of bounded size (JSON Lines compress ~20 times)."""
    inflate, started = zlib.decompressobj(wbits=31), False
    for chunk in chunks:
        data = chunk
        while data:
            started = True
            yield inflate.decompress(data, _CHUNK // 4)
            data = inflate.unconsumed_tail
            if inflate.eof:  # the next gzip member starts in what is left
                data = inflate.unused_data + data
                inflate, started = zlib.decompressobj(wbits=31), False
    if started:
        raise ValueError("the compressed manifest is cut short")


def _lines(chunks: Iterable[bytes], compressed: bool) -> Iterator[bytes]:
    """Lines of a byte stream, gunzipped (all members) where ``compressed``."""
    rest = b""
    for piece in _inflated(chunks) if compressed else chunks:
        rest += piece
        *done, rest = rest.split(b"\n")
        yield from (x for x in done if x.strip())
    if rest.strip():
        yield rest


def _text_lines(chunks: Iterable[bytes], compressed: bool) -> Iterator[str]:
    """:func:`_lines` as text, decoded a piece at a time (a record is looked into as text, and one decode per
    piece costs far less than one per line)."""
    decode, rest = codecs.getincrementaldecoder("utf-8")().decode, ""
    for piece in _inflated(chunks) if compressed else chunks:
        rest += decode(piece)
        *done, rest = rest.split("\n")
        yield from filter(str.strip, done)
    rest += decode(b"", True)
    if rest.strip():
        yield rest


def record_key(line: str) -> str:
    """The ``key`` of a serialised record, read without parsing the rest of it: ``"key": "`` can only be that
    field (a quote inside a JSON string is escaped), and ``scanstring`` decodes the value as ``json`` would."""
    at = line.find('"key": "')
    if at >= 0:
        return str(scanstring(line, at + 8)[0])
    return str(json.loads(line)["key"])


def is_tombstone(line: str) -> bool:
    """True when a serialised record says a mirror deleted its key (read without parsing the rest)."""
    at = line.find('"status": "')
    if at >= 0:
        return line.startswith(f'{DELETED}"', at + 11)
    return bool(json.loads(line).get("status") == DELETED)


def read_manifest(store: ObjectStore, key: str) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """The header of one manifest and a stream of its object records."""
    lines = _lines(store.read(key), key.endswith(SUFFIX))
    header = json.loads(next(lines, b"{}"))
    if header.get("type") != "header":
        raise ValueError("the first line is not a manifest header")
    return header, (json.loads(x) for x in lines)


def chain(store: ObjectStore, names: Iterable[str]) -> tuple[str | None, list[str], list[str]]:
    """The manifests that hold the current record of every key: the newest consolidated one (or None), the run
    manifests it does not cover, newest first, and the names it covers. Without a consolidated manifest: every
    run manifest back to the last one in the older format that covered the whole dataset."""
    names = sorted((k for k in names if is_manifest(k)), reverse=True)
    base = next((k for k in names if is_consolidated(k)), None)
    covered: list[str] = []
    if base is not None:
        try:
            covered = list(read_manifest(store, base)[0].get("covers") or [])
        except (StoreError, ValueError) as exc:
            log.warning("ignoring unreadable consolidated manifest %s: %s", store.uri(base), exc)
            base = None
    # by name, not by time: a manifest uploaded while a consolidation ran is never taken as covered
    done = set(covered)
    return base, [k for k in names if not is_consolidated(k) and k not in done], covered


def chain_records(store: ObjectStore, names: list[str]) -> Iterator[dict[str, Any]]:
    """The verified and deleted records of these run manifests, newest manifest first (so the first record of a
    key is its current one), back to an older-format manifest that covered the whole dataset."""
    for name in names:
        # a manifest that breaks off part way still vouches for the records read before the break
        try:
            header, records = read_manifest(store, name)
            yield from (r for r in records if r.get("status") in VERIFIED or r.get("status") == DELETED)
        except (StoreError, ValueError, KeyError) as exc:
            log.warning("ignoring the unreadable rest of manifest %s: %s", store.uri(name), exc)
            continue
        if header.get("complete") and not name.endswith(SUFFIX):
            return  # an older-format manifest that listed every object: nothing before it counts


def current_records(
    store: ObjectStore, base: str | None, newer: list[str], *, strict: bool = False
) -> Iterator[tuple[str, str]]:
    """``(relative key, serialised record)`` for the current record of every key of a chain, in key order, deleted
    keys included: the run manifests after the consolidated one sorted in bounded memory (spilled to temporary
    files when large) and merged with the consolidated one as it streams. Only the key of a record is read: the
    rest is parsed by whoever needs it (most records of a rerun only pass by). ``strict``: an unreadable
    consolidated manifest raises (a consolidation must not drop its records) instead of being read only in part."""
    if not newer:  # a no-op rerun's usual chain: the consolidated manifest alone, streamed as it is
        return _base_records(store, base, strict)
    return _merged(store, base, newer, strict)


def _merged(store: ObjectStore, base: str | None, newer: list[str], strict: bool) -> Iterator[tuple[str, str]]:
    lines = sorted_lines((r["key"], _line(r)) for r in chain_records(store, newer))
    recent = ((k, line.decode().rstrip("\n")) for k, line in lines)
    # on a tie the newer record comes first: heapq.merge keeps the order of its inputs, and the sort is stable
    merged = heapq.merge(recent, _base_records(store, base, strict), key=lambda t: t[0])
    last = None
    for item in merged:
        if item[0] != last:
            yield item
        last = item[0]


def iter_previous(
    dest: Location, manifest_dir: str = DEFAULT_MANIFEST_DIR, keys: Iterable[str] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(relative key, verified record)`` in key order: the consolidated manifest streamed, merged with the
    run manifests after it (sorted in bounded memory). A manifest that cannot be read is logged and ignored: it
    only costs a HEAD or a copy, never a wrong skip."""
    for key, line in previous_lines(dest, manifest_dir, keys):
        rec = json.loads(line)
        if rec.get("status") != DELETED:
            yield key, rec


def previous_lines(
    dest: Location, manifest_dir: str = DEFAULT_MANIFEST_DIR, keys: Iterable[str] | None = None
) -> Iterator[tuple[str, str]]:
    """:func:`current_records` of a replica's chain: ``(relative key, serialised record)``, tombstones included."""
    prefix = manifest_prefix(dest, manifest_dir)
    if keys is None:
        keys = (o.key for o in dest.store.list(prefix))
    base, newer, _ = chain(dest.store, (k for k in keys if k.startswith(prefix)))
    return current_records(dest.store, base, newer)


class RecordCursor:
    """The verified records of a replica looked up in ascending key order, the chain read as the lookups advance:
    once, lazily (nothing until the first lookup), keeping nothing but the next record. A record passed by is
    never parsed (only its key is read). Looking up a key below the previous one is a ValueError (the stream has
    passed it)."""

    def __init__(
        self, dest: Location, manifest_dir: str = DEFAULT_MANIFEST_DIR, keys: Iterable[str] | None = None
    ) -> None:
        self._dest, self._manifest_dir, self._keys = dest, manifest_dir, keys
        self._records: Iterator[tuple[str, str]] | None = None
        self._next: tuple[str, str] | None = None
        self._last = ""

    def line(self, rel: str) -> str | None:
        """The serialised current record of ``rel``, unparsed: a verified record, or a tombstone (a mirror deleted
        the key since; :func:`is_tombstone`)."""
        if rel < self._last:
            raise ValueError(f"manifest records looked up out of key order: {rel!r} after {self._last!r}")
        self._last = rel
        if self._records is None:
            self._records = previous_lines(self._dest, self._manifest_dir, self._keys)
            self._next = next(self._records, None)
        nxt, records = self._next, self._records
        while nxt is not None and nxt[0] < rel:
            nxt = next(records, None)
        self._next = nxt
        return nxt[1] if nxt is not None and nxt[0] == rel else None

    def get(self, rel: str) -> dict[str, Any] | None:
        """The verified record of ``rel``, parsed (None: no record, or a mirror deleted it since)."""
        line = self.line(rel)
        record = None if line is None else json.loads(line)
        return None if record is None or record.get("status") == DELETED else dict(record)


def _base_records(store: ObjectStore, base: str | None, strict: bool) -> Iterator[tuple[str, str]]:
    if base is None:
        return
    try:
        lines = _text_lines(store.read(base), base.endswith(SUFFIX))
        next(lines, None)  # the header
        for line in lines:
            at = line.find('"key": "')  # record_key, inline: this runs once per record of the chain
            yield (scanstring(line, at + 8)[0] if at >= 0 else record_key(line)), line
    except (StoreError, ValueError) as exc:
        if strict:
            raise
        log.warning("consolidated manifest %s read only in part: %s", store.uri(base), exc)


def read_previous(
    dest: Location, manifest_dir: str = DEFAULT_MANIFEST_DIR, keys: Iterable[str] | None = None
) -> dict[str, dict[str, Any]]:
    """The verified record of each relative key (:func:`iter_previous` as a dict, for callers that look keys
    up at random).

    ``keys``: the keys under the manifest folder where the caller listed them already, else they are listed.
    """
    return dict(iter_previous(dest, manifest_dir, keys))


def sorted_lines(lines: Iterable[tuple[str, bytes]], chunk: int = 20_000) -> Iterator[tuple[str, bytes]]:
    """``(key, line)`` pairs in key order, stably, in bounded memory: runs of ``chunk`` pairs sorted and spilled
    to temporary files, then merged."""
    spills: list[IO[bytes]] = []
    buf: list[tuple[str, bytes]] = []

    def spill() -> None:
        buf.sort(key=lambda t: t[0])
        f = tempfile.TemporaryFile(prefix="multicloud-sort-")  # noqa: SIM115
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=1) as gz:
            for _, line in buf:
                gz.write(line)
        f.seek(0)
        spills.append(f)
        buf.clear()

    for pair in lines:
        buf.append(pair)
        if len(buf) >= chunk:
            spill()
    if not spills:
        yield from sorted(buf, key=lambda t: t[0])
        return
    if buf:
        spill()
    try:
        yield from heapq.merge(*(_spilled(f) for f in spills), key=lambda t: t[0])
    finally:
        for f in spills:
            f.close()


def _spilled(f: IO[bytes]) -> Iterator[tuple[str, bytes]]:
    for line in _lines(iter(lambda: f.read(_CHUNK), b""), compressed=True):
        yield json.loads(line)["key"], line + b"\n"


def remove_quietly(store: ObjectStore, keys: Iterable[str], why: Callable[[str], str]) -> int:
    """Delete manifests no longer needed; one that cannot be deleted is logged and left (it costs only space)."""
    done = 0
    for key in keys:
        try:
            store.delete(key)
            done += 1
        except StoreError as exc:
            log.warning("could not remove %s (%s): %s", store.uri(key), why(key), exc)
    return done
