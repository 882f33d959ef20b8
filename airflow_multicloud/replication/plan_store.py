"""A plan made once, kept as one object next to the first destination, and read back one shard at a time.

Mapped tasks then get a reference of a few hundred bytes each through XCom, whatever the size of the dataset: the
plan object (gzip JSON Lines, a header line then one line per entry with its shard number) is written by
:func:`write_plan` and each task streams just its shard's entries out of it with :func:`read_shard`.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from airflow_multicloud.replication.model import Location, PlanEntry

PLAN_DIR = "_multicloud/plans/"
#: gzip's format in zlib terms (header and trailer included)
_GZIP = 16 + zlib.MAX_WBITS
#: entry lines compressed together before a chunk goes to the store
_BATCH = 1000


def plan_key(dest: Location, run_id: str) -> str:
    safe_run = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)[:120]
    return f"{dest.prefix}{PLAN_DIR}{safe_run}.jsonl.gz"


def _lines(header: dict[str, Any], shards: Sequence[Sequence[PlanEntry]]) -> Iterator[bytes]:
    yield (json.dumps({"type": "plan", **header}, sort_keys=True) + "\n").encode()
    for i, shard in enumerate(shards, 1):
        for start in range(0, len(shard), _BATCH):
            batch = shard[start : start + _BATCH]
            # "shard" first: a task finds its lines by their start, without parsing the others
            yield "".join(json.dumps({"shard": i, **e.to_json()}) + "\n" for e in batch).encode()


def _gzipped(lines: Iterable[bytes]) -> Iterator[bytes]:
    packer = zlib.compressobj(6, zlib.DEFLATED, _GZIP)
    for data in lines:
        out = packer.compress(data)
        if out:
            yield out
    yield packer.flush()


def write_plan(
    dest: Location, run_id: str, header: dict[str, Any], shards: Sequence[Sequence[PlanEntry]]
) -> list[dict[str, Any]]:
    """Write the plan under ``dest`` and return one reference per shard: ``{"plan": uri, "shard": i, "of": n}``."""
    key = plan_key(dest, run_id)
    header = {**header, "run_id": run_id, "shards": len(shards), "entries": sum(len(s) for s in shards)}
    dest.store.write(key, _gzipped(_lines(header, shards)), content_type="application/gzip")
    uri = dest.store.uri(key)
    return [{"plan": uri, "shard": i, "of": len(shards)} for i in range(1, len(shards) + 1)]


def _split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    unpacker = zlib.decompressobj(_GZIP)
    rest = b""
    for chunk in chunks:
        rest += unpacker.decompress(chunk)
        *lines, rest = rest.split(b"\n")
        yield from (line for line in lines if line)
    rest += unpacker.flush()
    if not unpacker.eof:
        raise ValueError("the plan object ends early (cut short while written or read)")
    if rest.strip():
        yield rest


def read_shard(dest: Location, reference: dict[str, Any]) -> tuple[dict[str, Any], list[PlanEntry]]:
    """The plan's header and the entries of the shard ``reference`` names, streamed out of the plan object.

    The plan must be one written next to ``dest`` (the task's first destination); ValueError names what differs.
    """
    uri, shard, of = _parse(reference)
    root = dest.store.uri("")
    if not uri.startswith(root + dest.prefix + PLAN_DIR):
        raise ValueError(
            f"plan_shard names the plan {uri}, not one under this task's first destination {dest.uri}: give the "
            "mapped task the same destinations as the PlanReplicationOperator"
        )
    lines = _split_lines(dest.store.read(uri[len(root) :]))
    header = json.loads(next(lines, b"{}"))
    if header.get("type") != "plan":
        raise ValueError(f"{uri} is not a replication plan (no plan header)")
    if header.get("shards") != of:
        raise ValueError(f"plan_shard says {of} shards, the plan {uri} holds {header.get('shards')}")
    mine = b'{"shard": %d, ' % shard
    entries = [PlanEntry.from_json(json.loads(line)) for line in lines if line.startswith(mine)]
    return header, entries


def _parse(reference: Any) -> tuple[str, int, int]:
    ok = isinstance(reference, dict) and isinstance(reference.get("plan"), str)
    shard, of = (reference.get("shard"), reference.get("of")) if ok else (None, None)
    if not (ok and isinstance(shard, int) and isinstance(of, int) and 1 <= shard <= of):
        raise ValueError(
            f"plan_shard must be one item of a PlanReplicationOperator's output, "
            f'{{"plan": <uri>, "shard": <i>, "of": <n>}}; got {str(reference)[:200]!r}'
        )
    return reference["plan"], shard, of
