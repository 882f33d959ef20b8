"""Copy one object to one or more destinations: read the source once, verify both ends, retry what failed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from airflow_multicloud import arguments
from airflow_multicloud.checksums import Crc64
from airflow_multicloud.errors import IntegrityError, ObjectNotFoundError, StoreError
from airflow_multicloud.replication.model import (
    META_CRC64,
    META_SOURCE_ETAG,
    META_SOURCE_SIZE,
    Location,
    ObjectResult,
    SourceObject,
    SourceProof,
    parse_choice,
)
from airflow_multicloud.replication.progress import count_consumed, object_counter
from airflow_multicloud.replication.proof import (
    BackgroundHasher,
    Crc64Hex,
    Evidence,
    SourceVerification,
    evidence_for,
    listed_evidence,
)
from airflow_multicloud.replication.stream import BandwidthLimiter, ByteBudget, SourceFailed, Tee, limited
from airflow_multicloud.stores.base import (
    ABORT_ATTEMPTS,
    MiB,
    ObjectInfo,
    ObjectStore,
    PartLayout,
    WriteProof,
    WriteResult,
    is_md5_etag,
    normalize_etag,
    prove_write,
)

log = logging.getLogger(__name__)

RETRYABLE = (IntegrityError, SourceFailed, ConnectionError, TimeoutError, OSError)
#: bytes queued between the source reader and each writer of one object (memory: this plus the parts in flight)
TEE_BYTES = 16 * MiB
#: chunks of one object queued for the source hasher
HASH_DEPTH = 4
#: measured with bench/budget_rss.py: 30 objects of 15 MiB COS -> OSS at the default settings peak at 272 MiB RSS
#: (605 MiB before); it lets five objects of 15 MiB, or two multipart streams at the default part settings, be
#: in flight at once
MAX_BUFFER = 160 * MiB


@dataclass(frozen=True)
class CopyOptions:
    """How each object is copied.

    :param object_retries: further attempts for an object after a failed one (bad checksum, 5xx, reset).
    :param retry_backoff: seconds before the first retry, doubled for each next one.
    :param limiter: shared bandwidth limit on source reads.
    :param chunk_size: bytes per read from the source stream.
    :param server_side: use the store's server-side copy when source and destination are the same service (a copy
        that cannot be proven by checksums on both sides, or that the service refuses, is streamed instead).
    :param source_verification: ``auto`` proves each read with evidence the source holds (MD5 ETag, CRC64, S3
        checksum, multipart ETag), else by a second read; ``strict`` fails objects without such evidence.
    :param max_buffer: bytes of object data the whole run may hold in memory at once, whatever the mix of object
        sizes (every copy made with these options shares one :class:`ByteBudget`); an object that needs more
        than this is copied alone.
    """

    object_retries: int = 3
    retry_backoff: float = 0.5
    limiter: BandwidthLimiter | None = None
    chunk_size: int = MiB
    server_side: bool = True
    source_verification: str = SourceVerification.AUTO
    max_buffer: int = MAX_BUFFER
    budget: ByteBudget = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        verification = parse_choice(SourceVerification, self.source_verification, "source_verification")
        object.__setattr__(self, "source_verification", verification)
        arguments.whole("max_buffer", self.max_buffer, MiB)
        # one budget per options instance: dataclasses.replace() makes a new instance, hence a new budget, so a
        # run derives its options once and hands the same instance to every copy
        object.__setattr__(self, "budget", ByteBudget(self.max_buffer))


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, StoreError):
        return exc.retryable
    return isinstance(exc, RETRYABLE)


class _SourceCheck:
    """Proves one read of a source object against its evidence (see :mod:`.proof`)."""

    def __init__(self, source: Location, obj: SourceObject, opts: CopyOptions, attempt: int) -> None:
        self.store = source.store
        self.key = source.key(obj.rel)
        self.uri = self.store.uri(self.key)
        self.size = obj.size
        self.opts = opts
        self.attempt = attempt
        self.evidence: Evidence | None = None

    @property
    def proof(self) -> SourceProof:
        return self.evidence.proof if self.evidence is not None else SourceProof.UNVERIFIED

    def ask_source(self) -> Evidence:
        """Evidence from the source itself (one HEAD; a guessed part layout is checked exactly on a retry)."""
        info = self.store.source_info(self.key)
        self.evidence = evidence_for(self.store, self.key, info, exact_layout=self.attempt > 1)
        self.evidence.require(self.uri, SourceVerification(self.opts.source_verification))
        return self.evidence

    def check_size(self, size: int) -> None:
        if size != self.size:
            raise IntegrityError(f"{self.uri}: read {size} bytes, the listing said {self.size}")

    def second_read(self, reference: str) -> None:
        """Read the object again: its hash must equal the first read's (``reference``)."""
        hasher = Crc64Hex()
        size = 0
        for chunk in limited(self.store.read(self.key, chunk_size=self.opts.chunk_size), self.opts.limiter):
            hasher.update(chunk)
            size += len(chunk)
        self.check_size(size)
        if hasher.result() != reference:
            raise self._reads_differ()

    def _reads_differ(self) -> IntegrityError:
        return IntegrityError(f"{self.uri}: two reads gave different bytes (it changed, or a read was corrupted)")

    def prove_bytes(self, data: bytes, listed: Evidence | None) -> None:
        """Prove a whole object held in memory: the listing's evidence where it matches, else the source's."""
        self.check_size(len(data))
        if listed is not None:
            got = _digest(listed, data)
            if got == listed.expected:
                self.evidence = listed
                return
            if listed.certain:
                listed.check(self.uri, got)
        evidence = self.ask_source()
        if evidence.second_read:
            # streamed and compared by hash, as for a large object: a second copy of the bytes would double the
            # memory this object holds
            hasher = Crc64Hex()
            hasher.update(data)
            self.second_read(hasher.result())
            return
        evidence.check(self.uri, _digest(evidence, data))


def _digest(evidence: Evidence, data: bytes) -> str:
    hasher = evidence.hasher()
    hasher.update(data)
    return hasher.result()


def _checked(
    chunks: Iterable[bytes], check: _SourceCheck, evidence: Evidence, hasher: BackgroundHasher
) -> Iterator[bytes]:
    """Yield the source's chunks; after the last one, raise if they are not proven the source's bytes.

    Raising before the stream ends keeps the writers from completing an upload of bad bytes. One hash pass, with
    the algorithm the evidence needs (``hasher``); a second read where the source holds no evidence.
    """
    size = 0
    held: bytes | None = None
    try:
        for chunk in chunks:
            hasher.update(chunk)
            size += len(chunk)
            if held is not None:
                yield held
            held = chunk
    finally:
        hasher.close()
    check.check_size(size)
    if evidence.second_read:
        check.second_read(hasher.result())
    else:
        evidence.check(check.uri, hasher.result())
    if held is not None:
        yield held


def _metadata(obj: SourceObject, crc64: int | None) -> dict[str, str]:
    meta = {META_SOURCE_SIZE: str(obj.size)}
    if obj.etag:
        meta[META_SOURCE_ETAG] = normalize_etag(obj.etag)
    if crc64 is not None:
        meta[META_CRC64] = f"{crc64:016x}"
    return meta


def _result(rel: str, d: int, sent: WriteResult, proof: SourceProof, written: WriteProof, attempt: int) -> ObjectResult:
    return ObjectResult(
        rel,
        d,
        "copied",
        sent.size,
        f"{sent.crc64:016x}",
        sent.md5 or None,
        normalize_etag(sent.etag),
        [proof.value, *written.evidence],
        None,
        attempt,
        proof.value,
        written.last_modified.isoformat() if written.last_modified else None,
    )


def _read_whole(source: Location, key: str, opts: CopyOptions) -> bytes:
    chunks = list(limited(source.store.read(key, chunk_size=opts.chunk_size), opts.limiter))
    # the one copy a single PUT needs (its body is hashed for Content-MD5 and sent whole); the chunks go right after
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _copy_small(
    source: Location, dests: Sequence[tuple[int, Location]], obj: SourceObject, opts: CopyOptions, attempt: int
) -> dict[int, ObjectResult | BaseException]:
    check = _SourceCheck(source, obj, opts, attempt)
    key = source.key(obj.rel)
    listed = listed_evidence(source.store, ObjectInfo(key, obj.size, obj.etag, obj.last_modified, obj.crc64))
    data = _read_whole(source, key, opts)
    check.prove_bytes(data, listed)
    crc = Crc64()
    crc.update(data)
    meta = _metadata(obj, crc.value)
    out: dict[int, ObjectResult | BaseException] = {}
    for d, dest in dests:
        try:
            sent = dest.store.write(dest.key(obj.rel), [data], metadata=meta)
            out[d] = _result(obj.rel, d, sent, check.proof, prove_write(dest.store, sent), attempt)
        except Exception as exc:
            out[d] = exc
    return out


def _copy_streamed(
    source: Location, dests: Sequence[tuple[int, Location]], obj: SourceObject, opts: CopyOptions, attempt: int
) -> dict[int, ObjectResult | BaseException]:
    check = _SourceCheck(source, obj, opts, attempt)
    evidence = check.ask_source()
    meta = _metadata(obj, evidence.crc64)
    hasher = BackgroundHasher(evidence.hasher(), depth=HASH_DEPTH)
    layout = _source_layout(evidence, dests, hasher)
    # Read the source in part-sized chunks when every destination cuts the same parts: each chunk then is a whole
    # part for every writer, shared by all of them, never copied again (copies cost as much CPU as hashing).
    chunk_size = layout.sizes[0] if layout is not None else _stream_chunk(dests, opts)
    tee = Tee(len(dests), depth=_tee_depth(chunk_size))
    out: dict[int, ObjectResult | BaseException] = {}
    counter = object_counter()  # the run's progress moves while a large object streams

    def run(i: int, d: int, dest: Location) -> None:
        try:
            # the source check hashes the stream once already; the writers add no whole-object MD5 pass
            stream = count_consumed(tee.stream(i), counter)
            sent = dest.store.write(
                dest.key(obj.rel), stream, metadata=meta, resume=True, whole_md5=False, layout=layout
            )
            if evidence.md5:
                sent = replace(sent, md5=evidence.md5)
            out[d] = _result(obj.rel, d, sent, evidence.proof, prove_write(dest.store, sent), attempt)
        except BaseException as exc:
            out[d] = exc
        finally:
            # the reader must stop feeding this writer now: its stream may stay suspended in the traceback above
            tee.close(i)

    threads = [threading.Thread(target=run, args=(i, d, dest), daemon=True) for i, (d, dest) in enumerate(dests)]
    for t in threads:
        t.start()
    try:
        chunks = limited(source.store.read(source.key(obj.rel), chunk_size=chunk_size), opts.limiter)
        tee.feed(_checked(chunks, check, evidence, hasher))
    except BaseException as exc:
        log.warning("reading %s failed: %s", check.uri, exc)
        tee.fail(exc)
    for t in threads:
        t.join()
    return out


def _source_layout(
    evidence: Evidence, dests: Sequence[tuple[int, Location]], hasher: BackgroundHasher
) -> PartLayout | None:
    """The source's own part layout, for every destination to write its parts in, where the source's proof is its
    multipart ETag and no part is larger than a destination's own (the memory budget counts those).

    Each destination then gets the source's ETag, and the part MD5s that prove the read prove each part written
    too: a destination that would hash every part (S3 signs each payload's SHA-256) can send them unhashed.
    """
    sizes = evidence.layout
    if not sizes or any(max(sizes) > dest.store.transfer.part_size for _, dest in dests):
        return None
    return PartLayout(sizes, hasher.part_md5s)


def _stream_chunk(dests: Sequence[tuple[int, Location]], opts: CopyOptions) -> int:
    part_sizes = {dest.store.transfer.part_size for _, dest in dests}
    return part_sizes.pop() if len(part_sizes) == 1 else opts.chunk_size


def _tee_depth(chunk_size: int) -> int:
    return max(1, TEE_BYTES // chunk_size)


def _footprint(obj: SourceObject, dests: Sequence[tuple[int, Location]], opts: CopyOptions, small: bool) -> int:
    """The most bytes one attempt at copying ``obj`` holds at once: what it takes from the run's budget.

    A single PUT: the chunks read and the body they are joined into. A stream: the source's chunks from the one
    just read back to the oldest one a writer still holds (the one being hashed, the one held back until the
    read is proven, the one waiting for room, the tee's queue, the part being cut, the parts in flight); when
    every writer cuts the source's own chunks they share them, else each writer also holds parts of its own.
    """
    if small:
        return 2 * obj.size + opts.chunk_size
    chunk = _stream_chunk(dests, opts)
    reader = max(_tee_depth(chunk) + 3, HASH_DEPTH + 2)
    concurrency = max(dest.store.transfer.max_concurrency for _, dest in dests)
    if all(dest.store.transfer.part_size == chunk for _, dest in dests):
        return (reader + concurrency + 1) * chunk
    return reader * chunk + sum((d.store.transfer.max_concurrency + 2) * d.store.transfer.part_size for _, d in dests)


class _NoServerSideProof(Exception):
    """A server-side copy left nothing comparable on both sides: the object is streamed instead."""


def _same_bytes(src: ObjectInfo, dst: ObjectInfo, source: ObjectStore, dest: ObjectStore) -> tuple[SourceProof, str]:
    """How the two sides' own checksums prove the copy; IntegrityError where they differ."""
    uri = dest.uri(dst.key)
    if src.crc64 is not None and dst.crc64 is not None:
        if src.crc64 != dst.crc64:
            raise IntegrityError(f"{uri}: server-side copy has CRC64 {dst.crc64:016x}, the source {src.crc64:016x}")
        return SourceProof.CRC64, "crc64"
    if src.checksum and src.checksum_algorithm and src.checksum_algorithm == dst.checksum_algorithm:
        if src.checksum != dst.checksum:
            raise IntegrityError(
                f"{uri}: server-side copy has {dst.checksum_algorithm} {dst.checksum}, the source {src.checksum}"
            )
        return SourceProof.S3_CHECKSUM, "s3-checksum"
    src_md5 = source.etag_is_md5 if src.etag_is_md5 is None else src.etag_is_md5
    dst_md5 = dest.etag_is_md5 if dst.etag_is_md5 is None else dst.etag_is_md5
    a, b = normalize_etag(src.etag), normalize_etag(dst.etag)
    if src_md5 and dst_md5 and a and b:
        if a == b:
            return (SourceProof.MD5_ETAG if is_md5_etag(a) else SourceProof.MULTIPART_ETAG), "etag"
        if is_md5_etag(a) and is_md5_etag(b):
            raise IntegrityError(f"{uri}: server-side copy has MD5 ETag {b}, the source {a}")
    raise _NoServerSideProof(f"{uri}: no checksum to compare on both sides of a server-side copy")


def _copy_server_side(source: Location, d: int, dest: Location, obj: SourceObject, attempt: int) -> ObjectResult:
    src_key, dst_key = source.key(obj.rel), dest.key(obj.rel)
    src = source.store.source_info(src_key)
    md5_based = source.store.etag_is_md5 if src.etag_is_md5 is None else src.etag_is_md5
    if src.crc64 is None and not src.checksum and not (md5_based and src.etag):
        raise _NoServerSideProof(f"{source.store.uri(src_key)}: no checksum a server-side copy could be compared with")
    if src.size != obj.size:
        raise IntegrityError(f"{source.store.uri(src_key)}: holds {src.size} bytes now, the listing said {obj.size}")
    meta = _metadata(obj, src.crc64)
    info = dest.store.copy_from(source.store, src_key, dst_key, metadata=meta)
    if info.size != src.size:
        raise IntegrityError(f"{dest.store.uri(dst_key)}: server-side copy holds {info.size} bytes, source {src.size}")
    proof, how = _same_bytes(src, info, source.store, dest.store)
    crc = f"{info.crc64:016x}" if info.crc64 is not None else None
    md5 = normalize_etag(src.etag) if proof is SourceProof.MD5_ETAG else None
    modified = info.last_modified.isoformat() if info.last_modified else None
    return ObjectResult(
        obj.rel,
        d,
        "copied",
        info.size,
        crc,
        md5,
        normalize_etag(info.etag),
        [proof.value, "server-side-copy", how],
        None,
        attempt,
        proof.value,
        modified,
    )


def _try_server_side(
    source: Location, d: int, dest: Location, obj: SourceObject, attempt: int
) -> ObjectResult | BaseException | None:
    """The outcome of a server-side copy, or None when the object must be streamed instead: the copy cannot be
    proven, its checksums differ (a streamed copy is proven from the source's bytes and replaces it), or the service
    refuses it (another account, COS objects over 5 GB, ...)."""
    try:
        return _copy_server_side(source, d, dest, obj, attempt)
    except _NoServerSideProof as exc:
        log.info("%s; streaming it instead", exc)
        return None
    except IntegrityError as exc:
        log.warning("%s; streaming it instead", exc)
        return None
    except StoreError as exc:
        if exc.retryable or isinstance(exc, ObjectNotFoundError):
            return exc
        log.warning("server-side copy to %s refused (%s); streaming it instead", dest.store.uri(dest.key(obj.rel)), exc)
        return None
    except Exception as exc:
        return exc


def _abort_leftovers(dest: Location, key: str, backoff: float) -> str:
    """Abort the unfinished uploads of ``key`` a failed copy kept for resuming; '' or what was left behind."""
    for attempt in range(1, ABORT_ATTEMPTS + 1):
        try:
            left = [u.upload_id for u in dest.store.list_multipart_uploads(key) if u.key == key]
        except StoreError as exc:
            if attempt == ABORT_ATTEMPTS or not exc.retryable:
                log.error("could not list the unfinished uploads of %s to abort them: %s", dest.store.uri(key), exc)
                return f"; its unfinished uploads could not be listed ({exc})"
            time.sleep(backoff * 2 ** (attempt - 1))
            continue
        kept = [upload_id for upload_id in left if not dest.store.abort_quietly(key, upload_id)]
        return f"; unfinished uploads left: {', '.join(kept)}" if kept else ""
    return ""


def copy_object(
    source: Location, dests: Sequence[tuple[int, Location]], obj: SourceObject, opts: CopyOptions
) -> list[ObjectResult]:
    """Copy one object to every destination given as (index, location); never raises for the object's own errors."""
    results: dict[int, ObjectResult] = {}
    pending = list(dests)
    stream_only: set[int] = set()  # destinations whose server-side copy was refused or unprovable
    for attempt in range(1, opts.object_retries + 2):
        outcome: dict[int, ObjectResult | BaseException] = {}
        streamed = []
        for d, dest in pending:
            got = None
            if opts.server_side and d not in stream_only and dest.store.endpoint_id == source.store.endpoint_id:
                got = _try_server_side(source, d, dest, obj, attempt)
            if got is None:
                stream_only.add(d)
                streamed.append((d, dest))
            else:
                outcome[d] = got
        if streamed:
            small = all(obj.size < dest.store.transfer.multipart_threshold for _, dest in streamed)
            try:
                # taken whole before reading and given back after the last writer: no copy waits holding part of it
                with opts.budget.hold(_footprint(obj, streamed, opts, small)):
                    outcome.update((_copy_small if small else _copy_streamed)(source, streamed, obj, opts, attempt))
            except Exception as exc:  # the source read failed before any destination was written
                outcome.update({d: exc for d, _ in streamed})
        retry = []
        for d, dest in pending:
            got = outcome.get(d, IntegrityError("no outcome"))
            if isinstance(got, ObjectResult):
                results[d] = got
                continue
            final = attempt > opts.object_retries or not _is_retryable(got) or isinstance(got, ObjectNotFoundError)
            uri = dest.store.uri(dest.key(obj.rel))
            if final:
                log.error("giving up on %s after %d attempt(s): %s", uri, attempt, got)
                left = ""
                if obj.size >= dest.store.transfer.multipart_threshold:
                    left = _abort_leftovers(dest, dest.key(obj.rel), opts.retry_backoff)
                results[d] = ObjectResult(
                    obj.rel, d, "failed", obj.size, error=f"{type(got).__name__}: {got}{left}", attempts=attempt
                )
            else:
                log.warning("attempt %d for %s failed, retrying: %s", attempt, uri, got)
                retry.append((d, dest))
        if not retry:
            break
        time.sleep(opts.retry_backoff * (2 ** (attempt - 1)))
        pending = retry
    return [results[d] for d, _ in dests]
