"""The bytes a run holds are bounded by one budget for the whole run, whatever the mix of object sizes.

Copies go between two local folders (the ``file://`` store, a real store of the product): no server slows the
reads, so every worker has an object in flight at once, which is what the budget must hold back. The bytes held
are measured with tracemalloc (the Python allocator, where every chunk, part and body lives), not RSS, which
would also count what the allocator keeps after a free.
"""

from __future__ import annotations

import os
import threading
import tracemalloc
from pathlib import Path

import pytest

from airflow_multicloud.replication.copy import MAX_BUFFER, CopyOptions
from airflow_multicloud.replication.engine import ReplicationOptions, replicate
from airflow_multicloud.replication.model import Location
from airflow_multicloud.replication.stream import ByteBudget
from airflow_multicloud.stores.base import MiB
from airflow_multicloud.stores.local import LocalStore

#: Python objects besides the object bytes (plan, results, threads' frames, SDK-free local I/O): measured ~2 MiB
SLACK = 16 * MiB


def _files(root: Path, sizes: list[int]) -> None:
    root.mkdir(parents=True)
    for i, size in enumerate(sizes):
        with (root / f"part-{i:03d}.bin").open("wb") as f:
            for start in range(0, size, MiB):
                f.write(os.urandom(min(MiB, size - start)))


def _copy(tmp_path: Path, sizes: list[int], options: ReplicationOptions) -> tuple[int, int]:
    """Copy objects of ``sizes``; (copied, most bytes the Python allocator held at once beyond the start)."""
    _files(tmp_path / "src", sizes)
    (tmp_path / "dst").mkdir()
    source, dest = Location(LocalStore(str(tmp_path / "src")), ""), Location(LocalStore(str(tmp_path / "dst")), "")
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        summary = replicate(source, [dest], options)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.failed == 0, summary.failed_keys
    return summary.copied, peak - start


@pytest.mark.timeout(600, method="thread")
def test_30_objects_of_15_mib_at_default_settings_stay_within_the_budget(tmp_path: Path) -> None:
    options = ReplicationOptions()
    assert options.copy.max_buffer == MAX_BUFFER and options.workers == 32
    copied, held = _copy(tmp_path, [15 * MiB] * 30, options)
    assert copied == 30
    assert held <= MAX_BUFFER + SLACK, f"held {held / MiB:.0f} MiB at once, the budget is {MAX_BUFFER / MiB:.0f} MiB"
    assert options.copy.budget.in_use == 0  # every copy gave back what it took


@pytest.mark.timeout(600, method="thread")
def test_objects_bigger_than_the_budget_still_copy_and_small_ones_share_what_is_left(tmp_path: Path) -> None:
    budget = 12 * MiB
    options = ReplicationOptions(workers=8, copy=CopyOptions(max_buffer=budget))
    sizes = [40 * MiB, 3 * MiB, 24 * MiB, *[2 * MiB + i for i in range(10)], 17 * MiB]
    copied, held = _copy(tmp_path, sizes, options)
    assert copied == len(sizes)
    assert all((tmp_path / "dst" / p.name).read_bytes() == p.read_bytes() for p in (tmp_path / "src").iterdir())
    assert options.copy.budget.peak <= budget and options.copy.budget.in_use == 0
    # a multipart object over the budget runs alone: what it holds is its own stream's window, no more
    one_stream = 10 * 8 * MiB
    assert held <= one_stream + SLACK, f"held {held / MiB:.0f} MiB at once"


def test_a_request_over_the_budget_takes_all_of_it_and_waits_its_turn() -> None:
    budget = ByteBudget(10)
    assert budget.acquire(4) == 4
    order: list[str] = []

    def take(name: str, n: int) -> None:
        with budget.hold(n) as got:
            order.append(f"{name}:{got}")

    big = threading.Thread(target=take, args=("big", 25))
    big.start()
    while not budget._queue:  # the big request is queued first
        threading.Event().wait(0.01)
    small = threading.Thread(target=take, args=("small", 1))
    small.start()
    threading.Event().wait(0.2)
    assert order == []  # the small one fits but does not overtake the big one waiting before it
    budget.release(4)
    big.join(5)
    small.join(5)
    assert order == ["big:10", "small:1"] and budget.in_use == 0


def test_a_copy_that_fails_gives_its_share_back() -> None:
    budget = ByteBudget(8)
    with pytest.raises(RuntimeError), budget.hold(6):
        raise RuntimeError("the destination refused")
    assert budget.in_use == 0 and budget.acquire(8) == 8
