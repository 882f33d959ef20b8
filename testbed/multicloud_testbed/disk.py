"""Disk-backed buckets shared by the local COS and OSS servers.

Object bytes live in files (named by a hash of the key, so any key fits), metadata in a JSON sidecar;
only the index of keys is in memory, so a multi-GiB object never is. Checksums are computed on the way in:
MD5 (ETag) and CRC64-XZ; a multipart object's CRC64 is the combination of its parts', as in the clouds.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from heapq import merge
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from airflow_multicloud.checksums import crc64, crc64_combine
from multicloud_testbed.pages import merge_pages, page_of
from multicloud_testbed.synthetic import SyntheticBucket, SyntheticSpec

COPY_BUF = 1024 * 1024


class NoSuchBucket(KeyError):
    pass


class NoSuchKey(KeyError):
    pass


class NoSuchUpload(KeyError):
    pass


class InvalidPart(ValueError):
    pass


class BadDigest(ValueError):
    pass


@dataclass
class StoredObject:
    key: str
    size: int
    etag: str  # hex MD5, or md5-of-md5s + "-N" for multipart (no quotes)
    crc64: int
    last_modified: float
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)  # lower-case names without the store prefix
    parts: int = 0


@dataclass
class StoredPart:
    number: int
    size: int
    etag: str
    crc64: int
    last_modified: float


@dataclass
class Upload:
    upload_id: str
    bucket: str
    key: str
    initiated: float
    content_type: str
    metadata: dict[str, str]
    parts: dict[int, StoredPart] = field(default_factory=dict)


def _name(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _copy_file(src: BinaryIO, dst: BinaryIO, size: int) -> None:
    """Append ``size`` bytes of ``src`` to ``dst`` in the kernel where it can (no copies through Python)."""
    dst.flush()  # the kernel writes at the descriptor's position: nothing may wait in Python's buffer
    copied = 0
    try:
        while copied < size:
            n = os.copy_file_range(src.fileno(), dst.fileno(), size - copied)
            if n == 0:
                break
            copied += n
    except OSError:  # a filesystem without copy_file_range: continue in user space from where it stopped
        pass
    if copied < size:
        src.seek(copied)
        dst.seek(0, os.SEEK_END)
        shutil.copyfileobj(src, dst, COPY_BUF)


def write_stream(dst: BinaryIO, src: BinaryIO, length: int) -> tuple[int, str, int]:
    """Copy ``length`` bytes from ``src`` (or until EOF when length < 0); return (size, md5 hex, crc64)."""
    md5 = hashlib.md5()
    crc = 0
    size = 0
    while length < 0 or size < length:
        want = COPY_BUF if length < 0 else min(COPY_BUF, length - size)
        chunk = src.read(want)
        if not chunk:
            break
        md5.update(chunk)
        crc = crc64(chunk, crc)
        dst.write(chunk)
        size += len(chunk)
    if 0 <= length != size:
        raise ConnectionError(f"body ended after {size} of {length} bytes")
    return size, md5.hexdigest(), crc


class DiskBuckets:
    """Buckets under one folder. Thread-safe; every public method is one atomic step."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / ".uploads").mkdir(exist_ok=True)
        (self.root / ".tmp").mkdir(exist_ok=True)
        self._lock = threading.RLock()
        self._index: dict[str, dict[str, StoredObject]] = {}
        self._sorted: dict[str, list[str] | None] = {}
        self._uploads: dict[str, Upload] = {}
        self._synthetic: dict[str, SyntheticBucket] = {}
        self._load()

    # ---- buckets --------------------------------------------------------------------------------
    def _load(self) -> None:
        for bdir in self.root.iterdir():
            if bdir.name.startswith(".") or not bdir.is_dir():
                continue
            objs: dict[str, StoredObject] = {}
            for meta in bdir.glob("*.json"):
                obj = StoredObject(**json.loads(meta.read_text()))
                objs[obj.key] = obj
            self._index[bdir.name] = objs
            self._sorted[bdir.name] = None

    def create_bucket(self, bucket: str) -> None:
        with self._lock:
            (self.root / bucket).mkdir(exist_ok=True)
            self._index.setdefault(bucket, {})
            self._sorted[bucket] = None

    def declare_synthetic(self, bucket: str, spec: SyntheticSpec) -> None:
        """Make ``bucket`` (created if needed) also hold the generated objects of ``spec`` (see :mod:`.synthetic`)."""
        with self._lock:
            self.create_bucket(bucket)
            self._synthetic[bucket] = SyntheticBucket(spec)

    def delete_bucket(self, bucket: str) -> None:
        with self._lock:
            self._objects(bucket)
            shutil.rmtree(self.root / bucket, ignore_errors=True)
            del self._index[bucket]
            self._sorted.pop(bucket, None)
            self._synthetic.pop(bucket, None)

    def bucket_exists(self, bucket: str) -> bool:
        return bucket in self._index

    def buckets(self) -> list[str]:
        return sorted(self._index)

    def _objects(self, bucket: str) -> dict[str, StoredObject]:
        try:
            return self._index[bucket]
        except KeyError:
            raise NoSuchBucket(bucket) from None

    # ---- objects --------------------------------------------------------------------------------
    def data_path(self, bucket: str, key: str) -> Path:
        return self.root / bucket / (_name(key) + ".data")

    def _commit(self, bucket: str, obj: StoredObject, tmp: Path) -> StoredObject:
        with self._lock:
            objs = self._objects(bucket)
            os.replace(tmp, self.data_path(bucket, obj.key))
            (self.root / bucket / (_name(obj.key) + ".json")).write_text(json.dumps(asdict(obj)))
            if obj.key not in objs:
                self._sorted[bucket] = None
            objs[obj.key] = obj
        return obj

    def _tmp(self) -> Path:
        return self.root / ".tmp" / uuid.uuid4().hex

    def put(
        self,
        bucket: str,
        key: str,
        body: BinaryIO,
        length: int,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        content_md5_hex: str | None = None,
    ) -> StoredObject:
        """Store a body read from ``body``; a wrong Content-MD5 raises BadDigest and stores nothing."""
        self._objects(bucket)
        tmp = self._tmp()
        try:
            with open(tmp, "wb") as f:
                size, md5, crc = write_stream(f, body, length)
            if content_md5_hex is not None and content_md5_hex != md5:
                raise BadDigest(key)
            obj = StoredObject(key, size, md5, crc, time.time(), content_type, dict(metadata or {}))
            return self._commit(bucket, obj, tmp)
        finally:
            tmp.unlink(missing_ok=True)

    def head(self, bucket: str, key: str) -> StoredObject:
        objs = self._objects(bucket)
        found = objs.get(key) or self._generated(bucket, key)
        if found is None:
            raise NoSuchKey(key)
        return found

    def _generated(self, bucket: str, key: str) -> StoredObject | None:
        syn = self._synthetic.get(bucket)
        return None if syn is None else syn.lookup(key)

    def open(self, bucket: str, key: str) -> tuple[StoredObject, BinaryIO]:
        with self._lock:
            obj = self.head(bucket, key)
            if key not in self._index[bucket]:
                return obj, BytesIO(self._synthetic[bucket].body(key))
            return obj, open(self.data_path(bucket, key), "rb")

    def delete(self, bucket: str, key: str) -> bool:
        with self._lock:
            objs = self._objects(bucket)
            syn = self._synthetic.get(bucket)
            generated = syn is not None and syn.delete(key)
            if objs.pop(key, None) is None:
                return generated
            self._sorted[bucket] = None
            self.data_path(bucket, key).unlink(missing_ok=True)
            (self.root / bucket / (_name(key) + ".json")).unlink(missing_ok=True)
            return True

    def copy(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> StoredObject:
        """Server-side copy; ``metadata=None`` keeps the source's (the COPY directive), a dict replaces it."""
        src, f = self.open(src_bucket, src_key)
        self._objects(dst_bucket)
        tmp = self._tmp()
        try:
            with f, open(tmp, "wb") as out:
                shutil.copyfileobj(f, out, COPY_BUF)
            obj = StoredObject(
                dst_key,
                src.size,
                src.etag,
                src.crc64,
                time.time(),
                content_type or src.content_type,
                dict(src.metadata if metadata is None else metadata),
                src.parts,
            )
            return self._commit(dst_bucket, obj, tmp)
        finally:
            tmp.unlink(missing_ok=True)

    def corrupt(self, bucket: str, key: str, offset: int = 0) -> None:
        """Flip one byte of a stored object without updating its checksums (fault injection)."""
        with open(self.data_path(bucket, key), "r+b") as f:
            f.seek(offset)
            b = f.read(1)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0xFF]))

    def list(
        self, bucket: str, prefix: str = "", after: str = "", delimiter: str = "", max_keys: int = 1000
    ) -> tuple[list[StoredObject], list[str], bool, str]:
        """One page: (objects, common prefixes, truncated, last key or prefix returned)."""
        with self._lock:
            objs = self._objects(bucket)
            keys = self._sorted.get(bucket)
            if keys is None:
                keys = sorted(objs)
                self._sorted[bucket] = keys
            syn = self._synthetic.get(bucket)
        page = page_of(keys, objs.get, prefix, after, delimiter, max_keys)
        if syn is None:
            return page

        def generated(key: str) -> StoredObject | None:
            return None if key in objs else syn.lookup(key)  # a written object hides the generated one

        return merge_pages(page, page_of(syn.keys, generated, prefix, after, delimiter, max_keys), max_keys)

    def iter_keys(self, bucket: str) -> Iterator[str]:
        objs = self._objects(bucket)
        syn = self._synthetic.get(bucket)
        generated = () if syn is None else (k for k in syn.keys if k not in objs and syn.lookup(k) is not None)
        yield from merge(sorted(objs), generated)

    # ---- multipart ------------------------------------------------------------------------------
    def create_upload(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> Upload:
        self._objects(bucket)
        up = Upload(uuid.uuid4().hex.upper(), bucket, key, time.time(), content_type, dict(metadata or {}))
        (self.root / ".uploads" / up.upload_id).mkdir()
        with self._lock:
            self._uploads[up.upload_id] = up
        return up

    def upload(self, upload_id: str) -> Upload:
        try:
            return self._uploads[upload_id]
        except KeyError:
            raise NoSuchUpload(upload_id) from None

    def put_part(
        self, upload_id: str, number: int, body: BinaryIO, length: int, content_md5_hex: str | None = None
    ) -> StoredPart:
        up = self.upload(upload_id)
        tmp = self._tmp()
        try:
            with open(tmp, "wb") as f:
                size, md5, crc = write_stream(f, body, length)
            if content_md5_hex is not None and content_md5_hex != md5:
                raise BadDigest(f"part {number}")
            return self._commit_part(up, number, tmp, size, md5, crc)
        finally:
            tmp.unlink(missing_ok=True)

    def _commit_part(self, up: Upload, number: int, tmp: Path, size: int, md5: str, crc: int) -> StoredPart:
        part = StoredPart(number, size, md5, crc, time.time())
        with self._lock:
            self.upload(up.upload_id)
            os.replace(tmp, self.root / ".uploads" / up.upload_id / str(number))
            up.parts[number] = part
        return part

    def copy_part(
        self, upload_id: str, number: int, src_bucket: str, src_key: str, start: int = 0, end: int | None = None
    ) -> StoredPart:
        """UploadPartCopy: bytes [start, end] (inclusive, like an HTTP Range) of another object."""
        up = self.upload(upload_id)
        src, f = self.open(src_bucket, src_key)
        last = src.size - 1 if end is None else end
        tmp = self._tmp()
        try:
            with f, open(tmp, "wb") as out:
                f.seek(start)
                size, md5, crc = write_stream(out, f, last - start + 1)
            return self._commit_part(up, number, tmp, size, md5, crc)
        finally:
            tmp.unlink(missing_ok=True)

    def list_uploads(self, bucket: str, prefix: str = "") -> builtins.list[Upload]:
        self._objects(bucket)
        with self._lock:
            ups = [u for u in self._uploads.values() if u.bucket == bucket and u.key.startswith(prefix)]
        return sorted(ups, key=lambda u: (u.key, u.initiated))

    def complete(self, upload_id: str, parts: builtins.list[tuple[int, str]]) -> StoredObject:
        """Assemble the named parts (number, etag) in order; a missing or mismatched part is InvalidPart."""
        up = self.upload(upload_id)
        numbers = [n for n, _ in parts]
        if numbers != sorted(set(numbers)) or not parts:
            raise InvalidPart("parts must be listed once each in ascending order")
        chosen: builtins.list[StoredPart] = []
        for number, etag in parts:
            part = up.parts.get(number)
            if part is None or part.etag.lower() != etag.strip('"').lower():
                raise InvalidPart(f"part {number}")
            chosen.append(part)
        folder = self.root / ".uploads" / upload_id
        tmp = self._tmp()
        crc = 0
        size = 0
        digest = hashlib.md5()
        try:
            with open(tmp, "wb") as out:
                for part in chosen:
                    with open(folder / str(part.number), "rb") as f:
                        _copy_file(f, out, part.size)
                    crc = crc64_combine(crc, part.crc64, part.size)
                    size += part.size
                    digest.update(bytes.fromhex(part.etag))
            etag = f"{digest.hexdigest()}-{len(chosen)}"
            obj = StoredObject(up.key, size, etag, crc, time.time(), up.content_type, up.metadata, len(chosen))
            self._commit(up.bucket, obj, tmp)
        finally:
            tmp.unlink(missing_ok=True)
        self.abort(upload_id)
        return obj

    def abort(self, upload_id: str) -> None:
        with self._lock:
            self.upload(upload_id)
            del self._uploads[upload_id]
        shutil.rmtree(self.root / ".uploads" / upload_id, ignore_errors=True)
