"""LocalStore on a temporary folder."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_multicloud.checksums import crc64
from airflow_multicloud.errors import BucketNotFoundError, InvalidKeyError, ObjectNotFoundError
from airflow_multicloud.stores.base import MiB, TransferConfig, verify_write
from airflow_multicloud.stores.local import LocalStore

TRANSFER = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB, max_concurrency=2)
KEYS = ["a b/c d.txt", "ünïcødé/日本語/✓.bin", "x+y%z#w?q=1&r=2", "d" * 200 + "/" + "e" * 255, "k/" * 511 + "k"]


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    root = tmp_path / "root"
    root.mkdir()
    return LocalStore(str(root), transfer=TRANSFER)


def visible_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".multicloud-" not in str(p))


@pytest.mark.parametrize("key", KEYS, ids=["spaces", "unicode", "specials", "long-components", "1023-deep"])
def test_every_key_round_trips(store: LocalStore, key: str) -> None:
    etag = store.put_object(key, b"payload", metadata={"origin": "test"})
    info = store.head(key)
    assert (info.key, info.size, info.etag) == (key, 7, etag)
    assert info.crc64 == crc64(b"payload") and etag == hashlib.md5(b"payload").hexdigest()
    assert info.metadata == {"origin": "test"}
    assert b"".join(store.read(key)) == b"payload"
    assert [o.key for o in store.list()] == [key]
    store.delete(key)
    assert list(store.list()) == []
    assert list(Path(store.bucket).iterdir()) != []  # only the hidden bookkeeping folders remain
    assert all(p.name.startswith(".multicloud-") for p in Path(store.bucket).iterdir())


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("k" * 1024, "1024 bytes; file names are limited to 255"),
        ("a/../b", "'..' path component"),
        ("a//b", "empty path component"),
        ("/abs", "empty path component"),
        ("dir/", "empty path component"),
        ("./x", "'.' path component"),
        ("nul\0byte", "NUL"),
        ("", "empty"),
        (".multicloud-meta/x", "reserved"),
    ],
)
def test_keys_a_filesystem_cannot_hold(store: LocalStore, key: str, why: str) -> None:
    for call in (
        lambda: store.put_object(key, b"x", metadata={}),
        lambda: store.head(key),
        lambda: store.create_multipart(key, metadata={}),
    ):
        with pytest.raises(InvalidKeyError, match="cannot be stored") as err:
            call()
        assert repr(key)[:30] in str(err.value) and why in str(err.value)


def test_file_and_folder_with_one_name(store: LocalStore) -> None:
    store.put_object("a", b"1", metadata={})
    with pytest.raises(InvalidKeyError, match=r"'a/b'.*share a name"):
        store.put_object("a/b", b"2", metadata={})
    assert [o.key for o in store.list()] == ["a"]


def test_zero_byte_object(store: LocalStore) -> None:
    result = store.write("empty", [])
    assert (result.size, result.parts) == (0, 0)
    assert store.head("empty").size == 0 and store.head("empty").crc64 == 0
    assert b"".join(store.read("empty")) == b""


@pytest.mark.parametrize(("size", "parts"), [(5 * MiB - 1, 0), (5 * MiB, 1), (5 * MiB + 1, 2)])
def test_write_around_multipart_threshold(store: LocalStore, size: int, parts: int) -> None:
    data = os.urandom(size)
    result = store.write("obj", (data[i : i + 700_000] for i in range(0, size, 700_000)), metadata={"k": "v"})
    assert result.parts == parts
    info = store.head("obj")
    assert (info.size, info.metadata, info.crc64) == (size, {"k": "v"}, result.crc64)
    assert b"".join(store.read("obj")) == data
    assert verify_write(store, result) == ["etag-md5", "crc64"]
    assert list(store.list_multipart_uploads()) == []


def test_read_ranges(store: LocalStore) -> None:
    data = bytes(range(256)) * 40
    store.put_object("r", data, metadata={})
    assert b"".join(store.read("r", 10, 20)) == data[10:20]
    assert b"".join(store.read("r", 10000)) == data[10000:]
    assert b"".join(store.read("r", 7, 7)) == b""
    assert [len(c) for c in store.read("r", 0, 2500, chunk_size=1000)] == [1000, 1000, 500]


def test_listing_is_in_flat_key_order(store: LocalStore) -> None:
    keys = [f"p/{i % 7}/{i:05d}-{'é' if i % 3 else 'z'}" for i in range(2500)]
    keys += ["a", "a-b", "a.c", "a0", "b/x", "b-", "b.", "b/", "b0/y", "p/3-", "p/3.x", "p/30/z"]
    keys.remove("b/")
    for key in keys:
        store.put_object(key, b"x", metadata={})
    listing = store.list()
    assert isinstance(listing, Iterator)
    assert [o.key for o in listing] == sorted(keys)
    assert [o.key for o in store.list("p/3")] == sorted(k for k in keys if k.startswith("p/3"))
    assert [o.key for o in store.list("b")] == sorted(k for k in keys if k.startswith("b"))
    assert [o.key for o in store.list("zzz")] == []


def test_missing_root_folder(tmp_path: Path) -> None:
    ghost = LocalStore(str(tmp_path / "nowhere"))
    for call in (
        lambda: list(ghost.list()),
        lambda: ghost.head("k"),
        lambda: b"".join(ghost.read("k")),
        lambda: ghost.put_object("k", b"1", metadata={}),
    ):
        with pytest.raises(BucketNotFoundError, match="nowhere"):
            call()


def test_missing_object(store: LocalStore) -> None:
    with pytest.raises(ObjectNotFoundError, match=f"file://{store.bucket}/nope"):
        store.head("nope")
    with pytest.raises(ObjectNotFoundError, match="nope"):
        b"".join(store.read("dir/nope"))
    store.delete("nope")
    assert store.uri("a/b") == f"file://{store.bucket}/a/b"


def test_copy_and_copy_from(store: LocalStore, tmp_path: Path) -> None:
    store.put_object("src", b"abc", metadata={"a": "1"})
    assert store.copy("src", "x/kept").metadata == {"a": "1"}
    assert store.copy("src", "replaced", metadata={"b": "2"}).metadata == {"b": "2"}
    assert store.head("x/kept").crc64 == crc64(b"abc")
    other_root = tmp_path / "other"
    other_root.mkdir()
    other = LocalStore(str(other_root))
    info = other.copy_from(store, "src", "copied")
    assert (info.size, info.metadata, b"".join(other.read("copied"))) == (3, {"a": "1"}, b"abc")
    with pytest.raises(ObjectNotFoundError):
        store.copy("missing", "x")


def test_file_changed_outside_loses_checksum_but_not_content(store: LocalStore) -> None:
    store.put_object("f", b"old", metadata={"m": "1"})
    (Path(store.bucket) / "f").write_bytes(b"changed")
    info = store.head("f")
    assert (info.size, info.crc64, info.metadata) == (7, None, {})
    (Path(store.bucket) / "plain.txt").write_bytes(b"made by hand")
    assert store.head("plain.txt").size == 12


def test_delete_removes_empty_folders(store: LocalStore) -> None:
    store.put_object("a/b/c", b"1", metadata={})
    store.put_object("a/d", b"1", metadata={})
    store.delete("a/b/c")
    assert not (Path(store.bucket) / "a" / "b").exists()
    assert (Path(store.bucket) / "a" / "d").exists()


def test_multipart_primitives(store: LocalStore) -> None:
    upload_id = store.create_multipart("mp", metadata={"x": "y"})
    assert [(u.key, u.upload_id) for u in store.list_multipart_uploads("m")] == [("mp", upload_id)]
    assert list(store.list_multipart_uploads("other")) == []
    etags = [store.upload_part("mp", upload_id, n, bytes([n]) * 10) for n in (2, 1, 3)]
    store.upload_part("mp", upload_id, 3, b"again")  # a re-sent part replaces the old one
    parts = store.list_parts("mp", upload_id)
    assert [(p.number, p.size) for p in parts] == [(1, 10), (2, 10), (3, 5)]
    assert parts[0].etag == etags[1]
    assert [o.key for o in store.list()] == []
    etag = store.complete_multipart("mp", upload_id, parts)
    assert etag.endswith("-3") and store.head("mp").etag == etag
    assert b"".join(store.read("mp")) == b"\x01" * 10 + b"\x02" * 10 + b"again"
    assert store.head("mp").metadata == {"x": "y"}
    with pytest.raises(ObjectNotFoundError, match="upload"):
        store.list_parts("mp", upload_id)
    upload_id = store.create_multipart("gone", metadata={})
    store.abort_multipart("gone", upload_id)
    store.abort_multipart("gone", upload_id)
    assert list(store.list_multipart_uploads()) == []


def test_failed_write_leaves_nothing(store: LocalStore) -> None:
    def broken() -> Iterator[bytes]:
        yield os.urandom(7 * MiB)
        raise OSError("source went away")

    for chunks in (broken, lambda: iter([b"x"] * 3 + [None])):  # type: ignore[list-item]
        with pytest.raises((OSError, TypeError)):
            store.write("doomed", chunks())
    assert visible_files(Path(store.bucket)) == []
    assert list(store.list_multipart_uploads()) == []
    assert list((Path(store.bucket) / ".multicloud-tmp").iterdir()) == []


def test_resume_sends_only_missing_parts(store: LocalStore) -> None:
    data = os.urandom(26 * MiB)
    chunks = [data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]

    def broken() -> Iterator[bytes]:
        yield from chunks[:3]
        raise OSError("source went away")

    one = LocalStore(store.bucket, transfer=TransferConfig(5 * MiB, 5 * MiB, max_concurrency=1))
    with pytest.raises(OSError, match="source went away"):
        one.write("r", broken(), resume=True)
    [upload] = one.list_multipart_uploads()
    stored = len(one.list_parts("r", upload.upload_id))
    assert stored in (2, 3)  # part 3 may be cancelled before it starts
    result = one.write("r", iter(chunks), resume=True)
    assert (result.parts, result.parts_reused) == (6, stored)
    assert b"".join(one.read("r")) == data
    assert verify_write(one, result) == ["etag-md5", "crc64"]
    assert list(one.list_multipart_uploads()) == []
