"""A plan's entries kept in a temporary file instead of memory: a first copy of a million objects plans a million
entries, and the run reads them back as often as it needs (counts, cost, the copy itself) in bounded memory."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator

from airflow_multicloud.replication.model import PlanAction, PlanEntry

#: bytes of serialised entries gathered before a write, and read at once when iterating
_CHUNK = 1 << 18


class EntrySpool:
    """Append-only entries, serialised as JSON lines to an anonymous temporary file. Each iteration reads the file
    on its own offsets (``os.pread``), so several may run at once; appending while iterating is not supported.
    The file goes away with the spool (or :meth:`close`)."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="multicloud-plan-")  # noqa: SIM115
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._size = 0
        self._count = 0
        #: entries with a copy to make, and the bytes those copies write: counted as entries come, so the copy's
        #: progress knows its totals without reading the file once more
        self.copies = 0
        self.copy_bytes = 0
        #: every action of every entry (one per destination), for :meth:`Plan.count` without a read of the file
        self.actions: Counter[str] = Counter()

    def append(self, entry: PlanEntry) -> None:
        self.actions.update(entry.actions.values())
        if n := copies_of(entry):
            self.copies += 1
            self.copy_bytes += entry.obj.size * n
        line = (json.dumps(entry.to_json(), separators=(",", ":")) + "\n").encode()
        self._pending.append(line)
        self._pending_bytes += len(line)
        self._count += 1
        if self._pending_bytes >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            os.pwrite(self._file.fileno(), data, self._size)
            self._size += len(data)
            self._pending.clear()
            self._pending_bytes = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[PlanEntry]:
        self._flush()
        end, offset, rest = self._size, 0, b""
        while offset < end:
            chunk = os.pread(self._file.fileno(), min(_CHUNK, end - offset), offset)
            offset += len(chunk)
            *lines, rest = (rest + chunk).split(b"\n")
            for line in lines:
                yield PlanEntry.from_json(json.loads(line))

    def close(self) -> None:
        self._file.close()


def copies_of(entry: PlanEntry) -> int:
    """How many destinations ``entry`` is copied to."""
    return sum(1 for a in entry.actions.values() if a == PlanAction.COPY)
