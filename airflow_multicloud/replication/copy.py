"""Copy one object to one or more destinations: read the source once, verify both ends, retry what failed."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from airflow_multicloud.checksums import Crc64
from airflow_multicloud.errors import IntegrityError, ObjectNotFoundError, StoreError
from airflow_multicloud.replication.model import (
    META_CRC64,
    META_SOURCE_ETAG,
    META_SOURCE_SIZE,
    Location,
    ObjectResult,
    SourceObject,
)
from airflow_multicloud.replication.stream import BandwidthLimiter, SourceFailed, Tee, limited
from airflow_multicloud.stores.base import ABORT_ATTEMPTS, MiB, WriteResult, is_md5_etag, normalize_etag, verify_write

log = logging.getLogger(__name__)

RETRYABLE = (IntegrityError, SourceFailed, ConnectionError, TimeoutError, OSError)
#: bytes queued between the source reader and each writer of one object (memory: this plus the parts in flight)
TEE_BYTES = 16 * MiB


@dataclass(frozen=True)
class CopyOptions:
    """How each object is copied.

    :param object_retries: further attempts for an object after a failed one (bad checksum, 5xx, reset).
    :param retry_backoff: seconds before the first retry, doubled for each next one.
    :param limiter: shared bandwidth limit on source reads.
    :param chunk_size: bytes per read from the source stream.
    :param server_side: use the store's server-side copy when source and destination are the same service.
    """

    object_retries: int = 3
    retry_backoff: float = 0.5
    limiter: BandwidthLimiter | None = None
    chunk_size: int = MiB
    server_side: bool = True


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, StoreError):
        return exc.retryable
    return isinstance(exc, RETRYABLE)


class _SourceCheck:
    """What the source's bytes must hash to, where the store says: its MD5 ETag or its CRC64."""

    def __init__(self, source: Location, obj: SourceObject) -> None:
        self.md5 = normalize_etag(obj.etag) if is_md5_etag(obj.etag) and source.store.etag_is_md5 else None
        self.crc64 = obj.crc64
        if self.md5 is None and self.crc64 is None:
            info = source.store.head(source.key(obj.rel))
            recorded = info.metadata.get(META_CRC64)
            self.crc64 = info.crc64 if info.crc64 is not None else (int(recorded, 16) if recorded else None)
        self.uri = source.store.uri(source.key(obj.rel))

    @property
    def evidence(self) -> str:
        return "source-md5" if self.md5 else "source-crc64" if self.crc64 is not None else "source-unverified"

    def check(self, md5: str, crc: int, size: int, expected_size: int) -> None:
        if size != expected_size:
            raise IntegrityError(f"{self.uri}: read {size} bytes, the listing said {expected_size}")
        if self.md5 is not None and md5 != self.md5:
            raise IntegrityError(f"{self.uri}: bytes read have MD5 {md5}, the source's ETag says {self.md5}")
        if self.crc64 is not None and crc != self.crc64:
            raise IntegrityError(f"{self.uri}: bytes read have CRC64 {crc:016x}, the source says {self.crc64:016x}")


def _checked(chunks: Iterable[bytes], check: _SourceCheck, expected_size: int) -> Iterator[bytes]:
    """Yield the source's chunks; after the last one, raise if they do not match what the source reported.

    Raising before the stream ends keeps the writers from completing an upload of bad bytes.
    """
    # Hash only what the source gave something to compare with: a multipart S3 ETag and no recorded CRC64
    # leave nothing to check, and each MD5 pass costs as much CPU as the copy itself.
    md5 = hashlib.md5() if check.md5 is not None else None
    crc = Crc64() if check.crc64 is not None else None
    size = 0
    held: bytes | None = None
    for chunk in chunks:
        if md5 is not None:
            md5.update(chunk)
        if crc is not None:
            crc.update(chunk)
        size += len(chunk)
        if held is not None:
            yield held
        held = chunk
    check.check(md5.hexdigest() if md5 else "", crc.value if crc else 0, size, expected_size)
    if held is not None:
        yield held


def _metadata(obj: SourceObject, crc64: int | None) -> dict[str, str]:
    meta = {META_SOURCE_SIZE: str(obj.size)}
    if obj.etag:
        meta[META_SOURCE_ETAG] = normalize_etag(obj.etag)
    if crc64 is not None:
        meta[META_CRC64] = f"{crc64:016x}"
    return meta


def _result(rel: str, d: int, sent: WriteResult, evidence: list[str], attempt: int) -> ObjectResult:
    return ObjectResult(
        rel,
        d,
        "copied",
        sent.size,
        f"{sent.crc64:016x}",
        sent.md5 or None,
        normalize_etag(sent.etag),
        evidence,
        None,
        attempt,
    )


def _copy_small(
    source: Location, dests: Sequence[tuple[int, Location]], obj: SourceObject, opts: CopyOptions, attempt: int
) -> dict[int, ObjectResult | BaseException]:
    check = _SourceCheck(source, obj)
    data = b"".join(
        _checked(
            limited(source.store.read(source.key(obj.rel), chunk_size=opts.chunk_size), opts.limiter), check, obj.size
        )
    )
    crc = Crc64()
    crc.update(data)
    meta = _metadata(obj, crc.value)
    out: dict[int, ObjectResult | BaseException] = {}
    for d, dest in dests:
        try:
            sent = dest.store.write(dest.key(obj.rel), [data], metadata=meta)
            out[d] = _result(obj.rel, d, sent, [check.evidence, *verify_write(dest.store, sent)], attempt)
        except Exception as exc:
            out[d] = exc
    return out


def _copy_streamed(
    source: Location, dests: Sequence[tuple[int, Location]], obj: SourceObject, opts: CopyOptions, attempt: int
) -> dict[int, ObjectResult | BaseException]:
    check = _SourceCheck(source, obj)
    meta = _metadata(obj, check.crc64)
    # Read the source in part-sized chunks when every destination cuts the same parts: each chunk then is a whole
    # part for every writer, shared by all of them, never copied again (copies cost as much CPU as hashing).
    part_sizes = {dest.store.transfer.part_size for _, dest in dests}
    chunk_size = part_sizes.pop() if len(part_sizes) == 1 else opts.chunk_size
    tee = Tee(len(dests), depth=max(1, TEE_BYTES // chunk_size))
    out: dict[int, ObjectResult | BaseException] = {}

    def run(i: int, d: int, dest: Location) -> None:
        try:
            # the source check already hashes the stream where an MD5 can be compared; no second pass here
            sent = dest.store.write(dest.key(obj.rel), tee.stream(i), metadata=meta, resume=True, whole_md5=False)
            if check.md5:
                sent = replace(sent, md5=check.md5)
            out[d] = _result(obj.rel, d, sent, [check.evidence, *verify_write(dest.store, sent)], attempt)
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
        tee.feed(_checked(chunks, check, obj.size))
    except BaseException as exc:
        log.warning("reading %s failed: %s", source.store.uri(source.key(obj.rel)), exc)
        tee.fail(exc)
    for t in threads:
        t.join()
    return out


def _copy_server_side(source: Location, d: int, dest: Location, obj: SourceObject, attempt: int) -> ObjectResult:
    src_key, dst_key = source.key(obj.rel), dest.key(obj.rel)
    meta = _metadata(obj, obj.crc64)
    info = dest.store.copy_from(source.store, src_key, dst_key, metadata=meta)
    if info.size != obj.size:
        raise IntegrityError(f"{dest.store.uri(dst_key)}: server-side copy holds {info.size} bytes, source {obj.size}")
    evidence = ["server-side-copy", "size"]
    if obj.crc64 is not None and info.crc64 is not None:
        if obj.crc64 != info.crc64:
            raise IntegrityError(f"{dest.store.uri(dst_key)}: CRC64 {info.crc64:016x} differs from the source's")
        evidence.append("crc64")
    crc = f"{info.crc64:016x}" if info.crc64 is not None else None
    return ObjectResult(obj.rel, d, "copied", info.size, crc, None, normalize_etag(info.etag), evidence, None, attempt)


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
    for attempt in range(1, opts.object_retries + 2):
        outcome: dict[int, ObjectResult | BaseException] = {}
        streamed = []
        for d, dest in pending:
            if opts.server_side and dest.store.endpoint_id == source.store.endpoint_id:
                try:
                    outcome[d] = _copy_server_side(source, d, dest, obj, attempt)
                except Exception as exc:
                    outcome[d] = exc
            else:
                streamed.append((d, dest))
        if streamed:
            small = all(obj.size < dest.store.transfer.multipart_threshold for _, dest in streamed)
            try:
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
