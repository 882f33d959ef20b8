"""The tee never waits on a consumer that has stopped, and passes a source failure to those still reading."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from airflow_multicloud.replication.stream import SourceFailed, Tee

CHUNKS = [bytes([i]) * 10 for i in range(50)]


def _read_all(tee: Tee, i: int, out: list[object]) -> None:
    try:
        out.extend(tee.stream(i))
    except SourceFailed as exc:
        out.append(exc)
    finally:
        tee.close(i)


@pytest.mark.timeout(30, method="thread")
def test_a_writer_that_stops_does_not_block_the_reader_nor_the_others() -> None:
    tee = Tee(2, depth=2)
    held: list[object] = []  # the failed writer keeps its stream referenced, as a traceback would

    def fail_after_one() -> None:
        stream = tee.stream(0)
        held.append(stream)
        next(stream)
        tee.close(0)

    got: list[object] = []
    threads = [threading.Thread(target=fail_after_one), threading.Thread(target=_read_all, args=(tee, 1, got))]
    for t in threads:
        t.start()
    tee.feed(CHUNKS)
    for t in threads:
        t.join()
    assert got == CHUNKS


@pytest.mark.timeout(30, method="thread")
def test_a_failed_source_reaches_every_consumer_still_reading() -> None:
    tee = Tee(2, depth=2)
    got: list[list[object]] = [[], []]
    threads = [threading.Thread(target=_read_all, args=(tee, i, got[i])) for i in range(2)]
    for t in threads:
        t.start()

    def broken() -> Iterator[bytes]:
        yield from CHUNKS[:5]
        raise ConnectionResetError("source went away")

    with pytest.raises(ConnectionResetError):
        tee.feed(broken())
    tee.fail(ConnectionResetError("source went away"))
    for t in threads:
        t.join()
    for out in got:
        assert out[:5] == CHUNKS[:5] and isinstance(out[5], SourceFailed) and len(out) == 6
