"""The plan's own CPU per object: ``plan_copy`` over listings generated in memory (no HTTP, no SDK), two
destinations each holding a verified copy of every object and the consolidated manifest a first run leaves.

``.venv/bin/python bench/plan_cpu.py`` (100,000 and 1,000,000 objects), ``--sizes 100000`` for fewer,
``--profile FILE`` to write a cProfile of the largest size. Each size runs in a child process of its own, so its
peak RSS (``ru_maxrss``) is that size's alone; CPU seconds are the child's, every thread included. Beside the plan
the child times the three listings iterated alone (the part a real store's listing would spend instead), so the
plan's own share shows. See bench/README.md ("Scale").
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_multicloud.replication.manifest import Kind, ManifestWriter, manifest_key, manifest_record
from airflow_multicloud.replication.model import Location, ObjectResult, SourceObject
from airflow_multicloud.replication.plan import plan_copy
from airflow_multicloud.stores.base import ObjectInfo
from airflow_multicloud.stores.local import LocalStore

SIZES = (100_000, 1_000_000)
DESTINATIONS = 2
PREFIX = "data/"
STAMP = datetime(2026, 1, 1, tzinfo=UTC)
TARGET = 50_000  # objects per CPU second (issue 12's planning rate, for the plan alone)
SLOPE_CAP = 50  # bytes per object between the two sizes


def _key(i: int) -> str:
    return f"{PREFIX}part={i // 1000:04d}/obj-{i:07d}.parquet"  # in key order as ``i`` grows


class Generated(LocalStore):
    """A folder that holds the manifests, and lists ``count`` generated objects under :data:`PREFIX`."""

    def __init__(self, root: str, count: int, side: int) -> None:
        super().__init__(root)
        self.count, self.side = count, side

    def list_noting(self, prefix: str, unlisted: builtins.list[str]) -> Iterator[ObjectInfo]:
        if prefix != PREFIX:
            return super().list_noting(prefix, unlisted)
        return (ObjectInfo(_key(i), 1000 + i % 5000, _etag(self.side, i), STAMP) for i in range(self.count))


def _etag(side: int, i: int) -> str:
    return f'"{side:02x}{i:030x}"'


def prepare(root: Path, count: int) -> tuple[Location, list[Location]]:
    """The source and the destinations, each destination with one consolidated manifest of ``count`` records."""
    source = Location(Generated(str(root / "src"), count, 0), PREFIX)
    dests = []
    for d in range(1, DESTINATIONS + 1):
        (root / f"dst{d}").mkdir(parents=True, exist_ok=True)
        dest = Location(Generated(str(root / f"dst{d}"), count, d), PREFIX)
        manifests = root / f"dst{d}" / PREFIX / "_multicloud" / "manifests"
        if not manifests.is_dir() or not any(manifests.iterdir()):
            _manifest(dest, count, d)
        dests.append(dest)
    (root / "src").mkdir(parents=True, exist_ok=True)
    return source, dests


def _manifest(dest: Location, count: int, d: int) -> None:
    header = {"kind": Kind.CONSOLIDATED.value, "destination": dest.uri, "complete": True, "covers": []}
    writer = ManifestWriter(dest, manifest_key(dest, "first", Kind.CONSOLIDATED), header)
    try:
        for i in range(count):
            obj = SourceObject(_key(i)[len(PREFIX) :], 1000 + i % 5000, _etag(0, i), STAMP)
            result = ObjectResult(
                obj.rel, d - 1, "copied", obj.size, crc64=str(i * 7919), md5=f"{i:032x}", dest_etag=_etag(d, i),
                verified_by=["source-md5", "crc64"], source_proof="source-md5", dest_last_modified=STAMP.isoformat(),
            )  # fmt: skip
            writer.add(manifest_record(obj, result))
        writer.upload()
    finally:
        writer.close()


def child(root: Path, count: int, profile: str | None) -> dict[str, Any]:
    source, dests = prepare(root, count)
    cpu, wall = time.process_time(), time.perf_counter()
    listed = sum(1 for loc in (source, *dests) for _ in loc.store.list(PREFIX))
    listing_cpu = time.process_time() - cpu
    if listed != count * (1 + DESTINATIONS):
        raise RuntimeError(f"listed {listed} objects, expected {count * (1 + DESTINATIONS)}")
    cpu, wall = time.process_time(), time.perf_counter()
    if profile:
        import cProfile

        with cProfile.Profile() as prof:
            plan = plan_copy(source, dests)
        prof.dump_stats(profile)
    else:
        plan = plan_copy(source, dests)
    plan_cpu, plan_wall = time.process_time() - cpu, time.perf_counter() - wall
    if (plan.objects, len(plan.entries), plan.skipped) != (count, 0, dict.fromkeys(range(DESTINATIONS), count)):
        raise RuntimeError(f"the plan did not skip everything: {plan.objects} objects, {len(plan.entries)} entries")
    return {
        "objects": count,
        "plan_cpu_s": round(plan_cpu, 3),
        "plan_wall_s": round(plan_wall, 3),
        "listings_alone_cpu_s": round(listing_cpu, 3),
        "objects_per_cpu_s": round(count / plan_cpu),
        "us_per_object": round(plan_cpu / count * 1e6, 1),
        "us_per_object_beyond_listings": round((plan_cpu - listing_cpu) / count * 1e6, 1),
        "maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="objects, comma-separated")
    p.add_argument("--profile", metavar="FILE", help="cProfile of the largest size to FILE")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(Path(args.root), args.child, args.profile)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    load = [round(x, 2) for x in os.getloadavg()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="plan-cpu-") as tmp:
        for n in sizes:
            cmd = [sys.executable, __file__, "--child", str(n), "--root", f"{tmp}/{n}"]
            if args.profile and n == max(sizes):
                cmd += ["--profile", args.profile]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True)
            rows.append(json.loads(out.stdout.splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    ok = all(r["objects_per_cpu_s"] >= TARGET for r in rows)
    if len(rows) > 1:
        low, high = rows[-2], rows[-1]
        slope = (high["maxrss_mib"] - low["maxrss_mib"]) * 2**20 / (high["objects"] - low["objects"])
        print(f"RSS slope {low['objects']:,} -> {high['objects']:,}: {slope:.1f} B/object (target < {SLOPE_CAP})")
        ok = ok and slope < SLOPE_CAP
    print(f"target {TARGET:,} objects per CPU second: {'met' if ok else 'missed'}; load average at start {load}")
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
