"""Scale benchmark over synthetic buckets: no-op reruns at 10k/100k/1M objects, a first copy, parallel listing.

``.venv/bin/python bench/scale.py`` (all sizes), ``--sizes 10000,100000`` for fewer, ``--first-copy 0`` or
``--listing 0`` to leave those out, ``--product DIR`` as in bench/run.py. See bench/README.md ("Scale").
Figures go to stdout and to ``.bench/scale.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procs
from procs import Server, stop_all
from run import FULL, OUT, Ctx, _interrupt, _print_table, engine, worker

from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

MiB = 2**20
SIZES = (10_000, 100_000, 1_000_000)
OBJECT_SIZE = 32  # small objects: listing, planning and manifests dominate, as they do for a real 1M dataset
RSS_CAP_MIB = 300
SLOPE_CAP = 50  # bytes per object between 100,000 and 1,000,000
PLAN_RATE = 50_000  # objects per second
PREFIX = "data/"
ENGINE_TIMEOUT = 3600  # a first copy of 100,000 objects runs ~20 min on the shared 2-core machine
LIST_LATENCY = 0.02  # seconds added to every list request of the listing comparison (--list-latency)


def _spec(count: int, **extra: Any) -> dict[str, Any]:
    return {"count": count, "size": OBJECT_SIZE, "seed": 1, "prefix": PREFIX, "suffix": ".bin", **extra}


def _uri(server: Server, bucket: str) -> str:
    return f"{server.kind}://{bucket}/{PREFIX}"


def noop_rerun(ctx: Ctx, count: int) -> dict[str, Any]:
    """A synthetic COS source of ``count`` objects; a COS and an OSS destination already holding verified copies
    of all of them (same generator, the engine's metadata, and a complete manifest): the rerun must skip all."""
    cos, oss = ctx.server("cos"), ctx.server("oss")
    src = cos.synthetic(f"scale-src-{count}", **_spec(count))
    dests = [(cos, cos.synthetic(f"scale-dst-{count}", **_spec(count, replica_of=True))),
             (oss, oss.synthetic(f"scale-dst-{count}", **_spec(count, replica_of=True)))]  # fmt: skip
    for server, bucket in dests:
        server.manifest(bucket)
    cos.clear()
    oss.clear()
    out = engine(ctx, _uri(cos, src), [_uri(s, b) for s, b in dests], [cos, cos, oss], timeout=ENGINE_TIMEOUT)
    out["requests"] = {"cos": cos.stats()["ops"], "oss": oss.stats()["ops"]}
    rate = count / max(out["duration_s"], 1e-9)
    ctx.row("scale", f"no-op rerun {count:,} objects x 2 destinations: peak RSS", out["maxrss_mib"], "MiB",
            f"<= {RSS_CAP_MIB}", out["maxrss_mib"] <= RSS_CAP_MIB)  # fmt: skip
    ctx.row("scale", f"no-op rerun {count:,}: objects/s (plan + manifests; duration {out['duration_s']} s)",
            round(rate), "obj/s", f">= {PLAN_RATE:,}", rate >= PLAN_RATE)  # fmt: skip
    ctx.row("scale", f"no-op rerun {count:,}: objects copied", out.get("copied", 0), "", "== 0",
            out.get("copied", 0) == 0)  # fmt: skip
    targets = [f"{s.kind},{s.endpoint},{b}" for s, b in [(cos, src), *dests]]
    bare = worker("bare-list", "--prefix", PREFIX, *[a for t in targets for a in ("--target", t)])
    out["bare_list"] = bare
    ctx.row("scale", f"bare SDK listing of the same 3 buckets at once, {count:,} keys each: objects/s "
            f"(duration {bare['seconds']} s)", round(count / max(bare["seconds"], 1e-9)), "obj/s")  # fmt: skip
    floor = round(out["duration_s"] / bare["seconds"], 2)
    ctx.row("scale", f"no-op rerun {count:,}: duration / bare SDK listing", floor, "x")
    return out


def first_copy(ctx: Ctx, count: int) -> dict[str, Any]:
    """``count`` small objects from a synthetic COS source into an empty COS and an empty OSS bucket."""
    cos, oss = ctx.server("cos"), ctx.server("oss")
    src = cos.synthetic(f"scale-first-src-{count}", **_spec(count))
    dests = [(cos, cos.bucket(f"scale-first-dst-{count}")), (oss, oss.bucket(f"scale-first-dst-{count}"))]
    uris = [_uri(s, b) for s, b in dests]
    begun = dt.datetime.now()  # the log's time stamps are local time
    out = engine(ctx, _uri(cos, src), uris, [cos, cos, oss], "-v", timeout=ENGINE_TIMEOUT)
    out["command_to_first_copy_s"] = _first_copy(max(ctx.logs.glob("engine-*.log")).read_text(), begun)
    if out["command_to_first_copy_s"] is not None:
        ctx.row("scale", f"first copy {count:,}: seconds from the command to the first copy (log time stamps)",
                out["command_to_first_copy_s"], "s")  # fmt: skip
    ctx.row("scale", f"first copy {count:,} x {OBJECT_SIZE} B to 2 destinations: peak RSS", out["maxrss_mib"], "MiB",
            f"<= {RSS_CAP_MIB}", out["maxrss_mib"] <= RSS_CAP_MIB)  # fmt: skip
    ctx.row("scale", f"first copy {count:,}: objects/s (duration {out['duration_s']} s)",
            round(count / max(out["duration_s"], 1e-9)), "obj/s")  # fmt: skip
    return out


def _first_copy(log: str, begun: dt.datetime) -> float | None:
    """Seconds from ``begun`` (the command) to the first copy: the engine's "first copy started" line where it writes
    one, else its "plan for" line (an engine that plans everything first starts copying right after it)."""
    stamps = {}
    for line in log.splitlines():
        for mark in ("first copy started", "plan for "):
            if mark in line and mark not in stamps:
                stamps[mark] = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    mark = next((m for m in ("first copy started", "plan for ") if m in stamps), None)
    return None if mark is None else round((stamps[mark] - begun).total_seconds(), 3)


def _store(server: Server, bucket: str) -> Any:
    extra = server.connection["extra"]
    if server.kind == "cos":
        from airflow_multicloud.stores.cos import CosStore

        return CosStore.from_settings(
            bucket, secret_id=ACCESS_KEY, secret_key=SECRET_KEY, region=extra["region"], scheme="http",
            endpoint=extra["endpoint"],
        )  # fmt: skip
    from airflow_multicloud.stores.oss import OssStore

    return OssStore.from_settings(
        bucket, access_key_id=ACCESS_KEY, access_key_secret=SECRET_KEY, endpoint=extra["endpoint"],
        region=extra["region"], auth_version="v4",
    )  # fmt: skip


def listing(ctx: Ctx, count: int, latency: float) -> dict[str, Any]:
    """One listing chain vs :func:`list_parallel` of ``count`` synthetic keys, every list request delayed."""
    from airflow_multicloud.stores.listing import list_parallel

    out: dict[str, Any] = {}
    for kind, operation in (("cos", "ListObjects"), ("oss", "ListObjectsV2")):
        server = ctx.server(kind)
        store = _store(server, server.synthetic(f"scale-list-{count}", **_spec(count)))
        server.latency(latency, operation)
        timings: dict[str, float] = {}
        for label in ("one chain", "list_parallel, 8 workers"):
            t = time.perf_counter()
            listed = store.list(PREFIX) if label == "one chain" else list_parallel(store, PREFIX, workers=8)
            n = sum(1 for _ in listed)
            timings[label] = time.perf_counter() - t
            if n != count:
                raise RuntimeError(f"{kind} {label} listed {n} of {count} objects")
            ctx.row("listing", f"{kind}: {label}, {count:,} keys, {latency * 1000:.0f} ms per request",
                    round(count / timings[label]), "obj/s")  # fmt: skip
        server.latency(0)
        speedup = timings["one chain"] / timings["list_parallel, 8 workers"]
        ctx.row("listing", f"{kind}: parallel / one chain", round(speedup, 2), "x")
        out[kind] = timings
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="no-op rerun sizes, comma-separated")
    p.add_argument("--first-copy", type=int, default=100_000, help="objects of the first copy (0: skip)")
    p.add_argument("--listing", type=int, default=100_000, help="keys of the listing comparison (0: skip)")
    p.add_argument("--list-latency", type=float, default=LIST_LATENCY, help="seconds added to each list request")
    p.add_argument("--product", metavar="DIR", help="measure the airflow_multicloud package in DIR")
    args = p.parse_args(argv)
    if args.product:
        procs.PRODUCT.append(str(Path(args.product).resolve()))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    OUT.mkdir(exist_ok=True)
    logs, data = OUT / "logs", OUT / "scale-data"
    shutil.rmtree(data, ignore_errors=True)
    logs.mkdir(exist_ok=True)
    ctx = Ctx(FULL, data, logs)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    load_start = [round(x, 2) for x in os.getloadavg()]
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"airflow-multicloud scale benchmark, {when}, sizes {sizes}", flush=True)
    try:
        for count in sizes:
            ctx.raw[f"noop-{count}"] = noop_rerun(ctx, count)
        rss = {c: ctx.raw[f"noop-{c}"]["maxrss_mib"] for c in sizes}
        if len(sizes) > 1:
            low, high = (100_000, 1_000_000) if {100_000, 1_000_000} <= set(sizes) else (sizes[-2], sizes[-1])
            slope = (rss[high] - rss[low]) * MiB / (high - low)
            target = f"< {SLOPE_CAP}" if (low, high) == (100_000, 1_000_000) else ""
            ctx.row("scale", f"RSS slope {low:,} -> {high:,} objects", round(slope, 1), "B/obj", target,
                    slope < SLOPE_CAP if target else None)  # fmt: skip
        if args.first_copy:
            ctx.raw["first-copy"] = first_copy(ctx, args.first_copy)
        if args.listing:
            ctx.raw[f"listing-{args.list_latency}"] = listing(ctx, args.listing, args.list_latency)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        stop_all()
        with contextlib.suppress(OSError):
            shutil.rmtree(data, ignore_errors=True)
        results = {
            "date": when,
            "command": "bench/scale.py " + " ".join(sys.argv[1:]),
            "product": procs.PRODUCT[0] if procs.PRODUCT else str(procs.REPO),
            "duration_s": round(time.monotonic() - started, 1),
            "load_average_start_end": [load_start, [round(x, 2) for x in os.getloadavg()]],
            "rows": [r.__dict__ for r in ctx.rows],
            "raw": ctx.raw,
        }
        (OUT / "scale.json").write_text(json.dumps(results, indent=2, default=str))
    _print_table(ctx.rows)
    print(f"\nload average (1, 5, 15 min) at start {load_start}, at end {[round(x, 2) for x in os.getloadavg()]}")
    return 0 if all(r.ok is not False for r in ctx.rows) else 3


if __name__ == "__main__":
    sys.exit(main())
