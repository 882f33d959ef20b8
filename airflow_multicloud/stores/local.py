"""A local folder as a bucket: keys are relative paths under the root.

Writes go to a temp file and are renamed into place, so a failed write leaves nothing. User metadata, MD5 and
CRC64 live in a JSON sidecar per key under ``.multicloud-meta/`` (named by a hash of the key), trusted only while
the file still has the size, mtime and inode it had when written. Multipart uploads keep their parts under
``.multicloud-uploads/<id>/``. Hidden ``.multicloud-*`` folders are never listed.

Symbolic links are never followed out of the root, in either direction. A link to a file inside the root is
listed under the link's name and reads as the target's bytes; a link to a folder is not followed, and a link out
of the root, a dangling link or a special file (FIFO, socket, device) is not listed: each is logged by name and,
where the caller asks (:meth:`list_noting`), reported. A key whose path leads out of the root through a linked
folder is refused for reading and writing alike.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
import shutil
import stat
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_multicloud.checksums import crc64
from airflow_multicloud.errors import (
    BucketNotFoundError,
    IntegrityError,
    InvalidKeyError,
    ObjectNotFoundError,
    StoreError,
)
from airflow_multicloud.stores.base import MiB, ObjectInfo, ObjectStore, PartInfo, TransferConfig, UploadInfo

log = logging.getLogger(__name__)

_HIDDEN = ".multicloud-"
_META, _UPLOADS, _TMP = ".multicloud-meta", ".multicloud-uploads", ".multicloud-tmp"
_NAME_MAX = 255
_PATH_MAX = 4096
_BUF = MiB


class LocalStore(ObjectStore):
    """Objects as files under ``bucket``, an absolute folder path that must exist."""

    scheme = "file"
    native_crc64 = True  # computed on every write and kept in the sidecar
    stable_reads = True  # a read fails when the file changes under it

    def __init__(self, bucket: str, *, label: str = "", transfer: TransferConfig | None = None) -> None:
        # the real path: two spellings of one folder (a link to it) must look the same to the overlap check
        super().__init__(os.path.realpath(bucket), label=label, transfer=transfer)
        self.root = Path(self.bucket)

    def uri(self, key: str = "") -> str:
        return f"file://{self.bucket.rstrip('/')}/{key}"

    # ---- paths -----------------------------------------------------------------------------------
    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise BucketNotFoundError(f"local root folder {self.bucket!r} does not exist (or is not a folder)")

    def key_problem(self, key: str) -> str | None:
        """Why ``key`` cannot be a file under the root: a filesystem limit, or a path that a symbolic link leads
        out of the root (checked on the filesystem as it is now)."""
        why = _key_problem(key)
        if why:
            return why
        real = os.path.realpath(self.root / key)
        if not _inside(self.bucket, real):
            return f"its path leads through a symbolic link to {real}, outside the root {self.bucket}"
        return None

    def _path(self, key: str) -> Path:
        """The file for ``key``; InvalidKeyError when a filesystem cannot hold it or it leads out of the root."""
        why = self.key_problem(key)
        if why:
            raise InvalidKeyError(f"key {key!r} cannot be stored as a local file under {self.bucket}: {why}")
        return self.root / key

    def _sidecar(self, key: str) -> Path:
        return self.root / _META / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def _tmp(self) -> Path:
        tmp = self.root / _TMP
        tmp.mkdir(exist_ok=True)
        return tmp / uuid.uuid4().hex

    def _missing(self, key: str) -> StoreError:
        self._check_root()
        return ObjectNotFoundError(f"{self.uri(key)}: no such object")

    def _commit(self, key: str, tmp: Path, meta: dict[str, Any]) -> None:
        """Move a finished temp file into place with its sidecar; the temp file is gone afterwards either way."""
        path = self._path(key)
        try:
            st = tmp.stat()
            meta.update(key=key, size=st.st_size, mtime_ns=st.st_mtime_ns, ino=st.st_ino)
            side = self._sidecar(key)
            side.parent.mkdir(exist_ok=True)
            side_tmp = self._tmp()
            side_tmp.write_text(json.dumps(meta))
            os.replace(side_tmp, side)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
            except (NotADirectoryError, FileExistsError, IsADirectoryError) as exc:
                raise InvalidKeyError(
                    f"key {key!r} cannot be stored under {self.bucket!r}: a file and a folder would share a name "
                    f"({exc.strerror})"
                ) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _sidecar_for(self, key: str, st: os.stat_result) -> dict[str, Any]:
        try:
            meta: dict[str, Any] = json.loads(self._sidecar(key).read_text())
        except (OSError, ValueError):
            return {}
        if (meta.get("size"), meta.get("mtime_ns"), meta.get("ino")) != (st.st_size, st.st_mtime_ns, st.st_ino):
            return {}  # the file changed behind our back: its checksums no longer describe it
        return meta

    # ---- reading ---------------------------------------------------------------------------------
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.list_noting(prefix, [])

    def list_noting(self, prefix: str, unlisted: builtins.list[str]) -> Iterator[ObjectInfo]:
        self._check_root()
        yield from self._walk(self.root, "", prefix, unlisted)

    def _walk(self, folder: Path, rel: str, prefix: str, unlisted: builtins.list[str]) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(folder) as it:
                entries = [(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, e) for e in it]
        except FileNotFoundError:
            return
        # A folder sorts as "name/" so the walk yields keys in the same order as a flat sorted key list.
        for name, entry in sorted(entries, key=lambda t: t[0]):
            if not rel and name.startswith(_HIDDEN):
                continue
            key = rel + name
            if name.endswith("/"):
                if key.startswith(prefix) or prefix.startswith(key):
                    yield from self._walk(Path(entry.path), key, prefix, unlisted)
            elif key.startswith(prefix):
                st = self._file_stat(entry)
                if isinstance(st, str):
                    log.warning("%s: not listed: %s", self.uri(key), st)
                    unlisted.append(f"{self.uri(key)} ({st})")
                    continue
                if st is None:
                    continue
                # the sidecar's MD5 is the version a later run compares with; it is only trusted while valid
                meta = self._sidecar_for(key, st)
                modified = datetime.fromtimestamp(st.st_mtime, UTC)
                yield ObjectInfo(key, st.st_size, meta.get("md5"), modified, meta.get("crc64"))
            elif key > prefix:
                return

    def _file_stat(self, entry: os.DirEntry[str]) -> os.stat_result | str | None:
        """The stat of a listed entry's bytes, why it is not an object (a str), or None if it vanished."""
        try:
            if not entry.is_symlink():
                st = entry.stat(follow_symlinks=False)
                return st if stat.S_ISREG(st.st_mode) else "not a regular file"
            target = os.path.realpath(entry.path)
            if not _inside(self.bucket, target):
                return f"a symbolic link to {target}, outside the root: not followed"
            if os.path.relpath(target, self.bucket).startswith(_HIDDEN):
                return "a symbolic link into this store's bookkeeping folders"
            st = os.stat(target)
        except FileNotFoundError:
            if not entry.is_symlink():
                return None
            try:
                return f"a dangling symbolic link to {os.readlink(entry.path)}"
            except OSError:
                return None  # the link itself went away meanwhile
        if stat.S_ISDIR(st.st_mode):
            return "a symbolic link to a folder: folders are not followed through links"
        return st if stat.S_ISREG(st.st_mode) else "a symbolic link to something that is not a regular file"

    def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise self._missing(key) from exc
        if not path.is_file():
            raise ObjectNotFoundError(f"{self.uri(key)}: no such object (it is a folder)")
        meta = self._sidecar_for(key, st)
        return ObjectInfo(
            key,
            st.st_size,
            meta.get("md5"),
            datetime.fromtimestamp(st.st_mtime, UTC),
            meta.get("crc64"),
            dict(meta.get("metadata", {})),
        )

    def read(self, key: str, start: int = 0, end: int | None = None, chunk_size: int = MiB) -> Iterator[bytes]:
        path = self._path(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the with below, after the generator starts
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise self._missing(key) from exc
        with f:
            before = _version(os.fstat(f.fileno()))
            f.seek(start)
            left = -1 if end is None else max(end - start, 0)
            while left != 0:
                chunk = f.read(chunk_size if left < 0 else min(chunk_size, left))
                if not chunk:
                    break
                if left > 0:
                    left -= len(chunk)
                yield chunk
            self._check_unchanged(key, path, before, os.fstat(f.fileno()))

    def _check_unchanged(self, key: str, path: Path, before: tuple[int, int, int], after: os.stat_result) -> None:
        """A file written or replaced while it was read gives bytes of neither version: refuse them."""
        try:
            now = _version(path.stat())
        except OSError:
            now = None
        if _version(after) != before or now != before:
            raise IntegrityError(
                f"{self.uri(key)}: the file changed while it was read (size, modification time or inode differ); "
                "the read is retried, or wait until whatever writes it has finished"
            )

    # ---- changing --------------------------------------------------------------------------------
    def copy(self, src_key: str, dst_key: str, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        return self._copy(self, src_key, dst_key, metadata)

    def copy_from(
        self, src: ObjectStore, src_key: str, dst_key: str, *, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        if isinstance(src, LocalStore):
            return self._copy(src, src_key, dst_key, metadata)
        return super().copy_from(src, src_key, dst_key, metadata=metadata)

    def _copy(self, src: LocalStore, src_key: str, dst_key: str, metadata: Mapping[str, str] | None) -> ObjectInfo:
        self._check_root()
        self._path(dst_key)
        info = src.head(src_key)
        tmp = self._tmp()
        try:
            shutil.copyfile(src._path(src_key), tmp)
        except FileNotFoundError as exc:
            tmp.unlink(missing_ok=True)
            raise src._missing(src_key) from exc
        # computed from the copy, never carried over from the source's sidecar: comparing the two proves the copy
        md5, crc = _digests(tmp)
        meta = {"metadata": dict(info.metadata if metadata is None else metadata), "md5": md5, "crc64": crc}
        self._commit(dst_key, tmp, meta)
        return self.head(dst_key)

    def delete(self, key: str) -> None:
        path = self._path(key)
        self._check_root()
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass
        except IsADirectoryError:
            return
        self._sidecar(key).unlink(missing_ok=True)
        parent = path.parent
        while parent != self.root:  # folders exist only to hold keys, as in a bucket
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    # ---- multipart primitives ----------------------------------------------------------------------
    def put_object(
        self,
        key: str,
        data: bytes,
        *,
        metadata: Mapping[str, str],
        content_type: str | None = None,
        md5: bytes | None = None,
    ) -> str:
        self._path(key)
        self._check_root()
        tmp = self._tmp()
        tmp.write_bytes(data)
        digest = hashlib.md5(data).hexdigest()  # computed here, like a server's ETag, never taken from the caller
        self._commit(
            key, tmp, {"metadata": dict(metadata), "content_type": content_type, "md5": digest, "crc64": crc64(data)}
        )
        return digest

    def _upload_dir(self, upload_id: str) -> Path:
        if not upload_id or "/" in upload_id or upload_id.startswith("."):
            raise ObjectNotFoundError(f"multipart upload {upload_id!r} does not exist under {self.uri()}")
        return self.root / _UPLOADS / upload_id

    def _upload_meta(self, key: str, upload_id: str) -> dict[str, Any]:
        try:
            meta: dict[str, Any] = json.loads((self._upload_dir(upload_id) / "upload.json").read_text())
        except (OSError, ValueError) as exc:
            self._check_root()
            raise ObjectNotFoundError(f"multipart upload {upload_id!r} of {self.uri(key)} does not exist") from exc
        if meta["key"] != key:
            raise ObjectNotFoundError(f"multipart upload {upload_id!r} is for {meta['key']!r}, not {key!r}")
        return meta

    def create_multipart(self, key: str, *, metadata: Mapping[str, str], content_type: str | None = None) -> str:
        self._path(key)
        self._check_root()
        upload_id = uuid.uuid4().hex
        folder = self._upload_dir(upload_id)
        folder.mkdir(parents=True)
        initiated = datetime.now(UTC).isoformat()
        meta = {"key": key, "metadata": dict(metadata), "content_type": content_type, "initiated": initiated}
        (folder / "upload.json").write_text(json.dumps(meta))
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        self._upload_meta(key, upload_id)
        folder = self._upload_dir(upload_id)
        md5 = hashlib.md5(data).hexdigest()
        tmp = self._tmp()
        tmp.write_bytes(data)
        # The part's MD5 is in its file name, so a part and its ETag appear together or not at all.
        os.replace(tmp, folder / f"{number:05d}.{md5}.part")
        for old in folder.glob(f"{number:05d}.*.part"):
            if old.name != f"{number:05d}.{md5}.part":
                old.unlink(missing_ok=True)
        return md5

    def _parts(self, upload_id: str) -> dict[int, tuple[Path, PartInfo]]:
        parts = {}
        for path in self._upload_dir(upload_id).glob("*.part"):
            number, etag, _ = path.name.split(".")
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            parts[int(number)] = (path, PartInfo(int(number), size, etag))
        return parts

    def list_parts(self, key: str, upload_id: str) -> builtins.list[PartInfo]:
        self._upload_meta(key, upload_id)
        return [info for _, (_, info) in sorted(self._parts(upload_id).items())]

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[PartInfo]) -> str:
        meta = self._upload_meta(key, upload_id)
        stored = self._parts(upload_id)
        tmp = self._tmp()
        crc = 0
        try:
            with open(tmp, "wb") as out:
                for part in parts:
                    path, info = stored.get(part.number, (None, None))
                    if path is None or info is None or info.etag != part.etag.strip('"'):
                        raise StoreError(f"complete {self.uri(key)}: part {part.number} is missing or differs")
                    with open(path, "rb") as f:
                        while chunk := f.read(_BUF):
                            crc = crc64(chunk, crc)
                            out.write(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        # The S3-style ETag: MD5 of the part MD5s, "-N"; the engine checks it against what it sent.
        etag = hashlib.md5(b"".join(bytes.fromhex(p.etag.strip('"')) for p in parts)).hexdigest() + f"-{len(parts)}"
        side = {"metadata": meta["metadata"], "content_type": meta["content_type"], "md5": etag, "crc64": crc}
        self._commit(key, tmp, side)
        shutil.rmtree(self._upload_dir(upload_id), ignore_errors=True)
        return etag

    def abort_multipart(self, key: str, upload_id: str) -> None:
        shutil.rmtree(self._upload_dir(upload_id), ignore_errors=True)

    def list_multipart_uploads(self, prefix: str = "") -> Iterator[UploadInfo]:
        self._check_root()
        found = []
        try:
            folders = list((self.root / _UPLOADS).iterdir())
        except FileNotFoundError:
            return
        for folder in folders:
            try:
                meta = json.loads((folder / "upload.json").read_text())
            except (OSError, ValueError):
                continue
            if meta["key"].startswith(prefix):
                found.append(UploadInfo(meta["key"], folder.name, datetime.fromisoformat(meta["initiated"])))
        yield from sorted(found, key=lambda u: (u.key, u.initiated or datetime.min.replace(tzinfo=UTC)))


def _key_problem(key: str) -> str:
    """Why a POSIX filesystem cannot hold ``key`` as a relative path ('' when it can)."""
    if not key:
        return "it is empty"
    if "\0" in key:
        return "it contains a NUL character"
    try:
        encoded = key.encode()
    except UnicodeEncodeError:
        return "it is not valid UTF-8 text"
    if len(encoded) >= _PATH_MAX:
        return f"it is {len(encoded)} bytes long; paths are limited to {_PATH_MAX - 1}"
    parts = key.split("/")
    if parts[0].startswith(_HIDDEN):
        return f"names starting with {_HIDDEN!r} are reserved for this store's bookkeeping"
    for part in parts:
        if part == "":
            return "it has an empty path component ('//', or a leading or trailing '/')"
        if part in (".", ".."):
            return f"it has a {part!r} path component"
        if len(part.encode()) > _NAME_MAX:
            size = len(part.encode())
            return f"its component {part[:40]!r}... is {size} bytes; file names are limited to {_NAME_MAX}"
    return ""


def _inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root.rstrip("/") + "/")


def _version(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino


def _digests(path: Path) -> tuple[str, int]:
    md5, crc = hashlib.md5(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_BUF):
            md5.update(chunk)
            crc = crc64(chunk, crc)
    return md5.hexdigest(), crc
