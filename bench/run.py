"""Benchmarks of airflow-multicloud against plain copies and rclone, over local servers in their own processes.

``make bench`` runs ``.venv/bin/python bench/run.py``; ``--quick`` for a smoke run with small sizes,
``--only NAME`` (repeatable) for some benchmarks. Figures go to stdout as a table and to ``.bench/results.json``.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procs
from procs import PYTHON, REPO, Server, base_env, measured_env, run_child, stop_all

from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

MiB = 2**20
OUT = REPO / ".bench"
WORKER = str(REPO / "bench" / "worker.py")
MULTICLOUD = str(Path(PYTHON).parent / "multicloud")
APPID = "1250000000"
BENCHES = ["write-rss", "large", "fanout", "small", "noop", "memory"]

#: engine settings used everywhere (the CLI's defaults, passed explicitly so they are on record)
ENGINE = {"workers": 32, "large_workers": 2, "threshold_mib": 16, "part_size_mib": 8, "part_concurrency": 4}
#: a second engine setting tried in large, fanout and memory: the earlier defaults, larger threshold and parts
TUNED = ("--threshold=64MiB", "--part-size=16MiB", "--part-concurrency=4")  # the alternative: larger parts


@dataclass(frozen=True)
class Sizes:
    write: int
    large_n: int
    large: int
    small_n: int
    small: int
    mem_big: int
    mem_small: int


FULL = Sizes(1024 * MiB, 4, 256 * MiB, 5000, 16 * 1024, 2048 * MiB, 256 * MiB)
QUICK = Sizes(160 * MiB, 4, 72 * MiB, 400, 16 * 1024, 320 * MiB, 80 * MiB)


@dataclass
class Row:
    bench: str
    metric: str
    value: float | str
    unit: str = ""
    target: str = ""
    ok: bool | None = None


@dataclass
class Ctx:
    sizes: Sizes
    data: Path
    logs: Path
    servers: dict[str, Server] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    wanted: list[str] = field(default_factory=list)

    def server(self, name: str) -> Server:
        """``s3src``/``s3dst`` (two moto processes), ``cos``, ``oss`` (disk-backed, under .bench/data)."""
        if name not in self.servers:
            kind = "s3" if name.startswith("s3") else name
            root = None if kind == "s3" else str(self.data / name)
            self.servers[name] = Server(kind, root, self.logs)
        return self.servers[name]

    def row(self, *args: Any, **kwargs: Any) -> None:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        mark = "" if row.ok is None else ("  ok" if row.ok else "  MISSED")
        value = f"{row.value:,.2f}" if isinstance(row.value, float) else str(row.value)
        print(f"  {row.metric:<64} {value:>12} {row.unit:<8} {row.target}{mark}", flush=True)


# ---- helpers -------------------------------------------------------------------------------------------
def worker(*args: Any) -> dict[str, Any]:
    res = run_child([PYTHON, WORKER, *map(str, args)])
    out = res.json()
    out["wait4_maxrss_mib"] = round(res.maxrss_mib, 1)
    out["cpu_s"] = round(res.cpu_s, 3)
    return out


def engine(
    ctx: Ctx, src: str, dests: list[str], conns: list[Server], *extra: str, timeout: float = 900, explicit: bool = True
) -> dict[str, Any]:
    """``multicloud replicate`` in a child, connections from AIRFLOW_CONN_*; the summary plus wall time and RSS.

    ``explicit``: pass the :data:`ENGINE` settings on the command line (else the CLI's own defaults apply)."""
    env = measured_env(AIRFLOW_HOME=str(OUT / "airflow-home"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    ids = []
    for server in conns:
        conn_id = f"bench_{server.kind}_{server.endpoint.rsplit(':', 1)[1]}"
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(server.connection)
        ids.append(conn_id)
    argv = [MULTICLOUD, "replicate", src, *dests, "--json", "--src-conn", ids[0]]
    for conn_id in ids[1:]:
        argv += ["--dst-conn", conn_id]
    if explicit:
        argv += [
            f"--workers={ENGINE['workers']}",
            f"--large-workers={ENGINE['large_workers']}",
            f"--threshold={ENGINE['threshold_mib']}MiB",
            f"--part-size={ENGINE['part_size_mib']}MiB",
            f"--part-concurrency={ENGINE['part_concurrency']}",
        ]
    argv += ["--progress-interval=60", *extra]
    res = run_child(argv, env, timeout)
    summary = res.json()
    summary["wall_s"] = round(res.wall_s, 3)
    summary["maxrss_mib"] = round(res.maxrss_mib, 1)
    summary["cpu_s"] = round(res.cpu_s, 3)
    (ctx.logs / f"engine-{time.monotonic_ns()}.log").write_text(" ".join(argv) + "\n" + res.stderr)
    return summary


def s3_client(server: Server) -> Any:
    import boto3

    return boto3.session.Session(ACCESS_KEY, SECRET_KEY, region_name="us-east-1").client(
        "s3", endpoint_url=server.endpoint
    )


def wipe(server: Server, bucket: str) -> None:
    """Delete every object and unfinished upload in a bucket, so the next tool starts from the same state."""
    if server.kind == "s3":
        client = s3_client(server)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        for up in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
    else:
        from worker import make_store

        store = make_store(server.kind, server.endpoint, bucket)
        for up in list(store.list_multipart_uploads()):
            store.abort_multipart(up.key, up.upload_id)
        for obj in list(store.list()):
            store.delete(obj.key)
    server.clear()


def ensure_rclone() -> str:
    found = shutil.which("rclone")
    if found:
        return found
    print("rclone missing: installing Debian's package", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if subprocess.run(["apt-get", "install", "-y", "rclone"], check=False, **quiet).returncode != 0:  # type: ignore[call-overload]
        subprocess.run(["apt-get", "update"], check=True, **quiet)  # type: ignore[call-overload]
        subprocess.run(["apt-get", "install", "-y", "rclone"], check=True, **quiet)  # type: ignore[call-overload]
    found = shutil.which("rclone")
    if not found:
        raise RuntimeError("rclone is still missing after apt-get install")
    return found


def rclone(src: Server, dst: Server, path: str, *flags: str) -> dict[str, Any]:
    env = base_env()
    for name, server in (("SRC", src), ("DST", dst)):
        env.update(
            {
                f"RCLONE_CONFIG_{name}_TYPE": "s3",
                f"RCLONE_CONFIG_{name}_PROVIDER": "Other",
                f"RCLONE_CONFIG_{name}_ENDPOINT": server.endpoint,
                f"RCLONE_CONFIG_{name}_ACCESS_KEY_ID": ACCESS_KEY,
                f"RCLONE_CONFIG_{name}_SECRET_ACCESS_KEY": SECRET_KEY,
                f"RCLONE_CONFIG_{name}_REGION": "us-east-1",
            }
        )
    res = run_child([ensure_rclone(), "copy", f"src:{path}", f"dst:{path}", *flags], env)
    return {"seconds": round(res.wall_s, 3), "maxrss_mib": round(res.maxrss_mib, 1), "cpu_s": round(res.cpu_s, 3)}


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


# ---- 1. write-rss --------------------------------------------------------------------------------------
def bench_write_rss(ctx: Ctx) -> None:
    size = ctx.sizes.write
    out: dict[str, Any] = {}
    folder = ctx.data / "local-write"
    folder.mkdir(parents=True, exist_ok=True)
    for kind in ("s3", "cos", "oss", "file"):
        if kind == "file":
            bucket, endpoint = str(folder), ""
        else:
            server = ctx.server("s3dst" if kind == "s3" else kind)
            bucket, endpoint = (
                server.bucket("bench-write" if kind != "cos" else f"bench-write-{APPID}"),
                server.endpoint,
            )
        res = worker("write", "--store", kind, "--endpoint", endpoint, "--bucket", bucket, "--size", size)
        out[kind] = res
        peak = res["wait4_maxrss_mib"]
        ctx.row("write-rss", f"{kind}: write {size // MiB} MiB, throughput", res["mb_s"], "MB/s")
        ctx.row(
            "write-rss",
            f"{kind}: writer peak RSS (imports {res['base_rss_mib']:.0f})",
            peak,
            "MiB",
            "< 200",
            peak < 200,
        )
        if kind == "file":
            shutil.rmtree(folder, ignore_errors=True)
        else:
            wipe(server, bucket)
    ctx.raw["write-rss"] = out


# ---- 2. large ------------------------------------------------------------------------------------------
def seed_s3(ctx: Ctx, bucket: str, prefix: str, count: int, size: int) -> None:
    src = ctx.server("s3src")
    src.bucket(bucket)
    ctx.server("s3dst").bucket(bucket)
    res = worker(
        "seed", "--store", "s3", "--endpoint", src.endpoint, "--bucket", bucket,
        "--prefix", prefix, "--count", count, "--size", size, "--concurrency", 16 if size < MiB else 2,
    )  # fmt: skip
    print(f"  (seeded {count} x {size:,} B into {src.endpoint}/{bucket} in {res['seconds']:.1f} s)", flush=True)
    src.clear()


def bench_large(ctx: Ctx) -> None:
    s = ctx.sizes
    bucket, prefix = "bench-large", "large/"
    total = s.large_n * s.large
    if "seed-large" not in ctx.done:
        seed_s3(ctx, bucket, prefix, s.large_n, s.large)
        ctx.done.add("seed-large")
    src, dst = ctx.server("s3src"), ctx.server("s3dst")
    out: dict[str, Any] = {}
    uri = f"s3://{bucket}/{prefix}"
    engines = {}
    for label, flags in (("defaults", ()), ("16MiB-parts", TUNED)):
        out[f"engine {label}"] = eng = engine(ctx, uri, [uri], [src, dst], *flags)
        engines[label] = total / 1e6 / eng["duration_s"]
        ctx.row(
            "large", f"engine ({label}) {s.large_n} x {s.large // MiB} MiB S3->S3", round(engines[label], 1), "MB/s"
        )
        wipe(dst, bucket)
    # the client's CPU per GiB copied: the run's CPU less a dry run's (interpreter, imports, listing), so the
    # figure is what copying and proving the bytes cost (issue 10: the source proof may cost at most 10 %)
    out["engine dry run"] = dry = engine(ctx, uri, [uri], [src, dst], "--dry-run")
    for label in engines:
        per_gib = (out[f"engine {label}"]["cpu_s"] - dry["cpu_s"]) / (total / 2**30)
        out[f"engine {label}"]["client_cpu_s_per_gib"] = round(per_gib, 2)
        ctx.row("large", f"engine ({label}) client CPU per GiB", round(per_gib, 2), "CPU s")
    eng_label = max(engines, key=lambda k: engines[k])
    eng_mb_s = engines[eng_label]
    rates: dict[str, float] = {}
    for mode, c in [("ranged", 1), ("ranged", 4), ("ranged", 16), ("whole", 1), ("whole", 4)]:
        name = f"plain {mode} c={c}"
        res = worker("plain-copy", "--src", src.endpoint, "--dst", dst.endpoint, "--bucket", bucket,
                     "--prefix", prefix, "--concurrency", c, "--mode", mode)  # fmt: skip
        out[name] = res
        rates[name] = total / 1e6 / res["seconds"]
        ctx.row("large", name, round(rates[name], 1), "MB/s")
        wipe(dst, bucket)
    tuned = ("--transfers", "16", "--checkers", "16")
    for name, flags in [("rclone default", ()), ("rclone --transfers 16 --checkers 16", tuned)]:
        res = rclone(src, dst, f"{bucket}/{prefix}", *flags)
        out[name] = res
        rates[name] = total / 1e6 / res["seconds"]
        ctx.row("large", name, round(rates[name], 1), "MB/s")
        wipe(dst, bucket)
    best = max(rates, key=lambda k: rates[k])
    r = ratio(eng_mb_s, rates[best])
    ctx.row("large", f"engine ({eng_label}) / best baseline ({best})", r, "x", ">= 0.9", r >= 0.9)
    ctx.raw["large"] = out


# ---- 3. fanout -----------------------------------------------------------------------------------------
def bench_fanout(ctx: Ctx) -> None:
    s = ctx.sizes
    bucket, prefix = "bench-large", "large/"
    total = s.large_n * s.large
    if "seed-large" not in ctx.done:
        seed_s3(ctx, bucket, prefix, s.large_n, s.large)
        ctx.done.add("seed-large")
    src, cos, oss = ctx.server("s3src"), ctx.server("cos"), ctx.server("oss")
    cos_bucket, oss_bucket = cos.bucket(f"bench-fanout-{APPID}"), oss.bucket("bench-fanout")
    out: dict[str, Any] = {}
    engines = {}
    for label, flags in (("defaults", ()), ("16MiB-parts", TUNED)):
        src.clear()
        dests = [f"cos://{cos_bucket}/{prefix}", f"oss://{oss_bucket}/{prefix}"]
        eng = engine(ctx, f"s3://{bucket}/{prefix}", dests, [src, cos, oss], *flags)
        served = src.stats()
        eng["source_get_bytes"] = served["get_bytes"]
        out[f"engine {label}"] = eng
        engines[label] = total / 1e6 / eng["duration_s"]
        what = f"engine ({label}) S3 -> COS + OSS"
        ctx.row("fanout", f"{what} ({total // MiB} MiB source)", round(engines[label], 1), "MB/s")
        reads = served["get_bytes"] / total
        ctx.row("fanout", f"{what}: S3 bytes served / source size", round(reads, 3), "x", "== 1", abs(reads - 1) < 1e-9)
        wipe(cos, cos_bucket)
        wipe(oss, oss_bucket)
    eng_label = max(engines, key=lambda k: engines[k])
    eng_mb_s = engines[eng_label]
    best: dict[str, float] = {}
    for server, b in ((cos, cos_bucket), (oss, oss_bucket)):
        for c in (4, 16):
            res = worker("plain-put", "--store", server.kind, "--endpoint", server.endpoint, "--bucket", b,
                         "--prefix", prefix, "--count", s.large_n, "--size", s.large, "--concurrency", c)  # fmt: skip
            out[f"plain put {server.kind} c={c}"] = res
            ctx.row("fanout", f"plain parallel PUT to {server.kind}, {c} parts in flight", res["mb_s"], "MB/s")
            best[server.kind] = max(best.get(server.kind, 0.0), res["mb_s"])
            wipe(server, b)
    slower = min(best, key=lambda k: best[k])
    r = ratio(eng_mb_s, best[slower])
    ctx.row("fanout", f"engine ({eng_label}) / slower destination's PUT ({slower})", r, "x", ">= 0.85", r >= 0.85)
    ctx.raw["fanout"] = out


# ---- 4. small and 5. noop ------------------------------------------------------------------------------
def _small_engine_first(ctx: Ctx) -> dict[str, Any]:
    s = ctx.sizes
    bucket, prefix = "bench-small", "small/"
    if "small-engine" in ctx.raw:
        return dict(ctx.raw["small-engine"])
    seed_s3(ctx, bucket, prefix, s.small_n, s.small)
    src, dst = ctx.server("s3src"), ctx.server("s3dst")
    uri = f"s3://{bucket}/{prefix}"
    eng = engine(ctx, uri, [uri], [src, dst])
    eng["source_get_bytes"] = src.stats()["get_bytes"]
    ctx.raw["small-engine"] = eng
    return eng


def bench_small(ctx: Ctx) -> None:
    s = ctx.sizes
    bucket, prefix = "bench-small", "small/"
    eng = _small_engine_first(ctx)
    if "noop" in ctx.wanted and "noop" not in ctx.raw:
        bench_noop(ctx)
    src, dst = ctx.server("s3src"), ctx.server("s3dst")
    eng_rate = s.small_n / eng["duration_s"]
    ctx.row("small", f"engine {s.small_n} x {s.small // 1024} KiB S3->S3", round(eng_rate, 1), "obj/s")
    wipe(dst, bucket)
    out: dict[str, Any] = {"engine": eng}
    plain: dict[str, float] = {}
    for c in (16, 32):
        res = worker("plain-copy", "--src", src.endpoint, "--dst", dst.endpoint, "--bucket", bucket,
                     "--prefix", prefix, "--concurrency", c, "--mode", "whole")  # fmt: skip
        out[f"plain c={c}"] = res
        plain[f"c={c}"] = s.small_n / res["seconds"]
        ctx.row("small", f"plain GET+PUT threads c={c}", round(plain[f"c={c}"], 1), "obj/s")
        wipe(dst, bucket)
    res = rclone(src, dst, f"{bucket}/{prefix}", "--transfers", "16", "--checkers", "16")
    out["rclone tuned"] = res
    rclone_rate = s.small_n / res["seconds"]
    ctx.row("small", "rclone --transfers 16 --checkers 16", round(rclone_rate, 1), "obj/s")
    wipe(dst, bucket)
    best = max(plain.values())
    r1, r2 = ratio(eng_rate, best), ratio(eng_rate, rclone_rate)
    ctx.row("small", "engine / best plain copy", r1, "x", ">= 0.85", r1 >= 0.85)
    ctx.row("small", "engine / tuned rclone", r2, "x", ">= 1.25", r2 >= 1.25)
    ctx.raw["small"] = out


def bench_noop(ctx: Ctx) -> None:
    s = ctx.sizes
    bucket, prefix = "bench-small", "small/"
    first = _small_engine_first(ctx)
    src, dst = ctx.server("s3src"), ctx.server("s3dst")
    src.clear()
    dst.clear()
    uri = f"s3://{bucket}/{prefix}"
    again = engine(ctx, uri, [uri], [src, dst])
    src_stats, dst_stats = src.stats(), dst.stats()
    again["source_get_bytes"] = src_stats["get_bytes"]
    again["source_ops"] = src_stats["ops"]
    again["destination_ops"] = dst_stats["ops"]
    frac = ratio(again["duration_s"], first["duration_s"])
    ctx.row("noop", f"rerun over {s.small_n} unchanged objects", again["duration_s"], "s")
    ctx.row("noop", "rerun time / first run time", frac, "x", "<= 0.05", frac <= 0.05)
    ctx.row(
        "noop", "object bytes served by the source S3", src_stats["get_bytes"], "B", "== 0", src_stats["get_bytes"] == 0
    )
    ctx.row(
        "noop", "copied_bytes in the rerun's summary", again["copied_bytes"], "B", "== 0", again["copied_bytes"] == 0
    )
    ctx.row("noop", "requests to source / destination", f"{sum(src_stats['ops'].values())} / "
            f"{sum(dst_stats['ops'].values())}")  # fmt: skip
    ctx.raw["noop"] = {"first": first, "rerun": again}


# ---- 6. memory -----------------------------------------------------------------------------------------
def bench_memory(ctx: Ctx) -> None:
    s = ctx.sizes
    cos, oss = ctx.server("cos"), ctx.server("oss")
    cos_bucket, oss_bucket = cos.bucket(f"bench-mem-{APPID}"), oss.bucket("bench-mem")
    out: dict[str, Any] = {}
    for name, size in (("big", s.mem_big), ("small", s.mem_small)):
        res = worker("seed", "--store", "cos", "--endpoint", cos.endpoint, "--bucket", cos_bucket,
                     "--prefix", f"{name}/", "--count", 1, "--size", size, "--concurrency", 1)  # fmt: skip
        print(f"  (seeded {size // MiB} MiB into COS in {res['seconds']:.1f} s)", flush=True)
    baseline = engine(ctx, f"cos://{cos_bucket}/big/", [f"oss://{oss_bucket}/big/"], [cos, oss], "--dry-run")
    out["dry-run"] = baseline
    ctx.row("memory", "engine process peak RSS in a dry run (imports, plan)", baseline["maxrss_mib"], "MiB")
    for label, flags in (("defaults", ()), ("16MiB-parts", TUNED)):
        peaks = {}
        for name, size in (("big", s.mem_big), ("small", s.mem_small)):
            eng = engine(ctx, f"cos://{cos_bucket}/{name}/", [f"oss://{oss_bucket}/{name}/"], [cos, oss], *flags)
            wipe(oss, oss_bucket)
            out[f"{label} {name}"] = eng
            peaks[name] = eng["maxrss_mib"]
            what = f"{label}: COS->OSS {size // MiB} MiB"
            ctx.row("memory", f"{what}, throughput", round(size / 1e6 / eng["duration_s"], 1), "MB/s")
            # the targets apply to the defaults users get; the alternative setting is shown for comparison
            target = ("<= 256", peaks[name] <= 256) if label == "defaults" else ()
            ctx.row("memory", f"{what}, peak RSS", peaks[name], "MiB", *target)
        r = ratio(peaks["big"], peaks["small"])
        target = ("<= 1.1", r <= 1.1) if label == "defaults" else ()
        ctx.row("memory", f"{label}: peak RSS {s.mem_big // MiB} / {s.mem_small // MiB} MiB", r, "x", *target)
    wipe(cos, cos_bucket)
    wipe(oss, oss_bucket)
    ctx.raw["memory"] = out


RUNNERS: dict[str, Callable[[Ctx], None]] = {
    "write-rss": bench_write_rss,
    "large": bench_large,
    "fanout": bench_fanout,
    "small": bench_small,
    "noop": bench_noop,
    "memory": bench_memory,
}


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a minute or two")
    p.add_argument("--only", action="append", choices=BENCHES, help="run only this benchmark (repeatable)")
    p.add_argument(
        "--product",
        metavar="DIR",
        help="measure the airflow_multicloud package found in DIR (a patched copy) instead of the repo's",
    )
    p.add_argument("--markdown", metavar="JSON", help="print the table of a results file as Markdown, run nothing")
    args = p.parse_args(argv)
    if args.markdown:
        print(_markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    if args.product:
        if not (Path(args.product) / "airflow_multicloud" / "__init__.py").is_file():
            p.error(f"--product {args.product}: no airflow_multicloud package there")
        procs.PRODUCT.append(str(Path(args.product).resolve()))
    wanted = [b for b in BENCHES if not args.only or b in args.only]
    OUT.mkdir(exist_ok=True)
    logs, data = OUT / "logs", OUT / "data"
    shutil.rmtree(data, ignore_errors=True)
    logs.mkdir(exist_ok=True)
    ctx = Ctx(QUICK if args.quick else FULL, data, logs, wanted=wanted)
    signal.signal(signal.SIGTERM, _interrupt)
    command = "make bench" if not sys.argv[1:] else "bench/run.py " + " ".join(sys.argv[1:])
    started = time.monotonic()
    load_start = [round(x, 2) for x in os.getloadavg()]
    results_name = "results-product.json" if procs.PRODUCT else "results.json"  # a candidate's figures apart
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"airflow-multicloud benchmarks, {when}, {'quick' if args.quick else 'full'} sizes, engine {ENGINE}")
    if procs.PRODUCT:
        print(f"measuring the package in {procs.PRODUCT[0]}, not the repo's")
    print(f"engine also tried with {' '.join(TUNED)}")
    failed: list[str] = []
    try:
        for name in wanted:
            if name == "noop" and "noop" in ctx.raw:
                continue
            print(f"\n[{name}]", flush=True)
            t = time.monotonic()
            try:
                RUNNERS[name](ctx)
            except (RuntimeError, TimeoutError, OSError) as exc:
                failed.append(name)
                print(f"  ERROR: {exc}", flush=True)
                ctx.raw[f"{name}-error"] = str(exc)
            print(f"  ({time.monotonic() - t:.0f} s)", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        stop_all()
        with contextlib.suppress(OSError):
            shutil.rmtree(data, ignore_errors=True)
        results = {
            "date": when,
            "command": command,
            "sizes": "quick" if args.quick else "full",
            "product": procs.PRODUCT[0] if procs.PRODUCT else str(REPO),
            "engine_settings": ENGINE,
            "tuned_flags": TUNED,
            "duration_s": round(time.monotonic() - started, 1),
            "load_average_start_end": [load_start, [round(x, 2) for x in os.getloadavg()]],
            "rows": [r.__dict__ for r in ctx.rows],
            "raw": ctx.raw,
        }
        (OUT / results_name).write_text(json.dumps(results, indent=2, default=str))
    _print_table(ctx.rows)
    print(f"\nload average (1, 5, 15 min) at start {load_start}, at end {[round(x, 2) for x in os.getloadavg()]}")
    print(f"wrote {OUT / results_name} in {time.monotonic() - started:.0f} s")
    missed = [r for r in ctx.rows if r.ok is False]
    return 1 if failed else (0 if not missed else 3)


def _markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Run of {results['date']}, `{results['command']}`, {results['sizes']} sizes, {results['duration_s']:.0f} s"
        + (
            f", load average (1, 5, 15 min) {results['load_average_start_end']}"
            if "load_average_start_end" in results
            else ""
        )
        + ".",
        "",
        "| benchmark | figure | value | unit | target | result |",
        "|---|---|--:|---|---|---|",
    ]
    for r in results["rows"]:
        value = f"{r['value']:,.2f}" if isinstance(r["value"], float) else str(r["value"])
        res = "" if r["ok"] is None else ("ok" if r["ok"] else "**missed**")
        lines.append(f"| {r['bench']} | {r['metric']} | {value} | {r['unit']} | {r['target']} | {res} |")
    return "\n".join(lines)


def _print_table(rows: list[Row]) -> None:
    print("\n" + "=" * 124)
    print(f"{'benchmark':<10} {'figure':<66} {'value':>12} {'unit':<6} {'target':<9} result")
    print("-" * 124)
    for r in rows:
        value = f"{r.value:,.2f}" if isinstance(r.value, float) else str(r.value)
        res = "" if r.ok is None else ("ok" if r.ok else "MISSED")
        print(f"{r.bench:<10} {r.metric:<66} {value:>12} {r.unit:<6} {r.target:<9} {res}")


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
