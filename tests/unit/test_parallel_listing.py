"""list_parallel over a real local folder: the same objects, in the same order, as one listing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_multicloud.errors import StoreError
from airflow_multicloud.stores.base import ObjectInfo
from airflow_multicloud.stores.listing import default_bounds, list_parallel
from airflow_multicloud.stores.local import LocalStore

# names on both sides of every default bound, equal to a bound, and outside the split characters
KEYS = [
    "data/0",
    "data/00",
    "data/1",
    "data/10",
    "data/1~",
    "data/9z",
    "data/A-upper",
    "data/_under",
    "data/a",
    "data/z",
    "data/zzz",
    "data/~tilde",
    "data/ünï/日本.bin",
    "data/✓",
    "data-sibling/x",
    "other/1",
]


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    root = tmp_path / "root"
    for key in KEYS:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(key.encode())
    return LocalStore(str(root))


@pytest.mark.parametrize("prefix", ["", "data/", "data", "data/1", "nothing/"])
@pytest.mark.parametrize("workers", [1, 3, 8])
def test_same_objects_in_same_order_as_one_listing(store: LocalStore, prefix: str, workers: int) -> None:
    expected = [(o.key, o.size) for o in store.list(prefix)]
    got = [(o.key, o.size) for o in list_parallel(store, prefix, workers=workers, buffer=2)]
    assert got == expected
    assert len({k for k, _ in got}) == len(got)


def test_bounds_outside_the_prefix_and_custom_bounds(store: LocalStore) -> None:
    expected = [o.key for o in store.list("data/")]
    for bounds in (["a", "data/5", "zzz"], ["data/1"], [], ["data/", "data/\U0010ffff"]):
        assert [o.key for o in list_parallel(store, "data/", bounds, workers=2)] == expected


def test_unsorted_bounds_are_refused(store: LocalStore) -> None:
    with pytest.raises(ValueError, match="sorted and distinct"):
        list(list_parallel(store, "data/", ["data/5", "data/1"]))
    with pytest.raises(ValueError, match="workers"):
        list(list_parallel(store, "data/", workers=0))


def test_default_bounds_cut_after_the_prefix() -> None:
    bounds = default_bounds("p/")
    assert bounds == sorted(bounds) and all(b.startswith("p/") and len(b) == 3 for b in bounds)


class FailingAfter(LocalStore):
    """A real local store whose listing of keys past ``data/5`` fails, as a store error mid-listing would."""

    def list_after(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        if start_after >= "data/5":
            raise StoreError(f"listing {prefix} after {start_after} failed")
        return super().list_after(prefix, start_after)


def test_a_failing_range_raises_when_reached_and_earlier_keys_come_first(tmp_path: Path, store: LocalStore) -> None:
    failing = FailingAfter(store.bucket)
    seen: list[str] = []
    with pytest.raises(StoreError, match="after data/5"):
        for info in list_parallel(failing, "data/", ["data/1", "data/5"], workers=3):
            seen.append(info.key)
    assert seen == [o.key for o in store.list("data/") if o.key <= "data/5"]


def test_closing_early_stops(store: LocalStore) -> None:
    it = list_parallel(store, "", workers=2, buffer=1)
    first = next(it)
    it.close()
    assert first.key == min(KEYS)
