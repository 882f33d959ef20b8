"""The adaptive in-flight limit, fed simulated copies on a simulated clock (no threads, no sleeps, deterministic)."""

from __future__ import annotations

import heapq
import os
import threading
from pathlib import Path

import pytest

from airflow_multicloud.errors import InvalidArgumentError
from airflow_multicloud.replication.concurrency import AdaptiveLimit, FixedLimit, in_flight
from airflow_multicloud.replication.engine import ReplicationOptions, replicate
from airflow_multicloud.replication.model import Location
from airflow_multicloud.stores.base import CLIENT_POOL_SIZE
from airflow_multicloud.stores.local import LocalStore


class Link:
    """A link whose copies take ``base`` seconds with nothing queued, and that completes at most ``capacity`` a
    second: past ``capacity x base`` copies in flight, each new one also waits for the excess to drain."""

    def __init__(self, base: float, capacity: float) -> None:
        self.base, self.capacity = base, capacity
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def run(self, limit: AdaptiveLimit, seconds: float) -> float:
        """Keep ``limit`` copies in flight for ``seconds``; the completions per second."""
        pending: list[tuple[float, float]] = []
        done = 0
        end = self.now + seconds
        while self.now < end:
            while limit.in_flight < limit.limit:
                started = limit.acquire()
                excess = max(0.0, limit.in_flight - self.capacity * self.base)
                heapq.heappush(pending, (self.now + self.base + excess / self.capacity, started))
            self.now, started = heapq.heappop(pending)
            limit.release(started)
            done += 1
        while pending:  # copies in flight end before the link changes
            self.now, started = heapq.heappop(pending)
            limit.release(started)
        return done / seconds


def test_a_distant_link_that_takes_more_gets_more_in_flight() -> None:
    link = Link(base=0.2, capacity=10_000)  # 200 ms per copy, no bottleneck in reach
    limit = AdaptiveLimit(8, 2, 64, clock=link.clock)
    first = Link(0.2, 10_000).run(AdaptiveLimit(8, 8, 8, clock=link.clock), 5)  # fixed at 8: 40 copies/s
    rate = link.run(limit, 30)
    assert limit.limit == 64
    assert rate > 5 * first


def test_a_saturated_link_gets_about_its_bandwidth_delay_product() -> None:
    link = Link(base=0.05, capacity=100)  # 100 copies/s at most, 50 ms each: 5 in flight keep it busy
    limit = AdaptiveLimit(64, 2, 64, clock=link.clock)
    rate = link.run(limit, 60)
    assert 3 <= limit.limit <= 16  # near 5 (the probes halve it now and then), far below the 64 it started with
    assert rate >= 0.9 * 100  # and the link stays busy


def test_a_link_that_gets_farther_is_learnt_again() -> None:
    link = Link(base=0.02, capacity=100)
    limit = AdaptiveLimit(16, 2, 64, clock=link.clock)
    link.run(limit, 30)
    assert limit.limit <= 8  # 2 in flight keep it busy
    link.base = 0.3  # the same servers 300 ms away: 30 in flight needed for the same 100 copies/s
    rate = link.run(limit, 120)
    assert max(x for _, x in limit.history[-8:]) >= 30
    assert rate >= 0.7 * 100  # learning the new floor and the probes cost some


def test_bounds_hold_and_are_checked() -> None:
    link = Link(base=1.0, capacity=1e9)
    limit = AdaptiveLimit(100, 3, 10, clock=link.clock)
    assert limit.limit == 10  # the initial value is cut to the bounds
    link.run(limit, 60)
    assert max(x for _, x in limit.history) <= 10
    slow = Link(base=0.01, capacity=1)
    low = AdaptiveLimit(10, 3, 10, clock=slow.clock)
    slow.run(low, 200)
    assert low.limit >= 3
    with pytest.raises(ValueError, match="minimum <= maximum"):
        AdaptiveLimit(4, 8, 2)


def test_slot_waits_below_the_limit() -> None:
    limit = AdaptiveLimit(2, 2, 2)
    entered = threading.Event()

    def third() -> None:
        with limit.slot():
            entered.set()

    with limit.slot(), limit.slot():
        t = threading.Thread(target=third)
        t.start()
        assert not entered.wait(0.2)  # a third waits while two are in flight
    assert entered.wait(5)
    t.join()
    assert limit.in_flight == 0


def test_fixed_unless_adaptive() -> None:
    fixed = in_flight(32, adaptive=False)
    assert isinstance(fixed, FixedLimit) and fixed.maximum == 32
    adaptive = in_flight(32, adaptive=True)
    assert isinstance(adaptive, AdaptiveLimit)
    assert (adaptive.limit, adaptive.minimum, adaptive.maximum) == (32, 8, max(32, CLIENT_POOL_SIZE))


def test_a_run_with_an_adaptive_limit_copies_and_verifies_everything(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    files = {f"part-{i:03d}.bin": os.urandom(100 + i) for i in range(120)}  # enough for several windows
    src.mkdir()
    dst.mkdir()
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    opts = ReplicationOptions(progress_interval=0, workers=4, adaptive=True)
    summary = replicate(Location(LocalStore(str(src)), ""), [Location(LocalStore(str(dst)), "")], opts)
    assert (summary.copied, summary.failed) == (120, 0)
    assert all((dst / rel).read_bytes() == data for rel, data in files.items())
    with pytest.raises(InvalidArgumentError, match="adaptive"):
        ReplicationOptions(adaptive="yes")  # type: ignore[arg-type]
