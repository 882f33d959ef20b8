"""The latency profile: S3 -> S3 copies with a network round trip in front of every server, beside loopback figures.

Issue 13. ``.venv/bin/python bench/wan.py`` runs every case at each ``--rtt`` (default 0 and 40 ms) against rclone
(default, and ``--transfers 16 --checkers 16``) and a plain boto3 copy, all over the same moto servers in one run;
figures go to stdout and ``.bench/wan.json``. The round trip comes from ``bench/delay_proxy.py`` in front of each
server (one process per server; see its docstring for what it models and why). See bench/README.md.

Cases: ``small`` (N x 16 KiB), ``noop`` (the rerun over those N unchanged objects, with and without the CLI's
start-up), ``large`` (4 x 256 MiB), ``fanout`` (the small set to two destination servers in one run, against two
sequential rclone runs and a plain single-read boto3 fan-out). Requests per object come from the servers' logs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import REPO, Server, stop_all
from run import OUT, Ctx, MiB, Sizes, _interrupt, _print_table, engine, ratio, rclone, seed_s3, wipe, worker

CASES = ["small", "noop", "large", "fanout"]
DEFAULT = ("rclone default", ())
TUNED = ("rclone tuned", ("--transfers", "16", "--checkers", "16"))
#: the plain boto3 copy's threads (its best of 16 and 32 on loopback, and more is better across a round trip)
PLAIN_THREADS = 32


def _ops(stats: dict[str, Any]) -> Counter[str]:
    return Counter(stats["ops"])


class Profile:
    """One round trip: sets it on every server, measures each tool with the servers' request counts."""

    def __init__(self, ctx: Ctx, rtt: float, adaptive: bool = False) -> None:
        self.ctx, self.rtt, self.adaptive = ctx, rtt, adaptive
        self.tag = f"{rtt:g} ms"

    def servers(self) -> list[Server]:
        return list(self.ctx.servers.values())

    def run(self, what: str, fn: Any, n: int) -> dict[str, Any]:
        """Run ``fn`` with the round trip on; its result plus the requests each server saw, per object."""
        for server in self.servers():
            server.clear()
            server.rtt(self.rtt)
        try:
            out: dict[str, Any] = fn()
        finally:
            for server in self.servers():
                server.rtt(0)
        requests = {}
        for name, server in self.ctx.servers.items():
            stats = server.stats()
            ops = {k: v for k, v in _ops(stats).items() if v}
            if ops:
                requests[name] = {"ops": ops, "get_bytes": stats["get_bytes"]}
        out["requests"] = requests
        out["requests_per_object"] = {name: round(sum(r["ops"].values()) / n, 3) for name, r in requests.items()}
        self.ctx.raw.setdefault(self.tag, {})[what] = out
        return out

    def row(self, case: str, metric: str, *args: Any, **kwargs: Any) -> None:
        self.ctx.row(f"{case}@{self.tag}", metric, *args, **kwargs)

    def requests_row(self, case: str, tool: str, res: dict[str, Any]) -> None:
        per = res["requests_per_object"]
        text = ", ".join(f"{k} {v:g}" for k, v in per.items())
        self.row(case, f"{tool}: requests per object", text)


def _small(p: Profile, n: int) -> None:
    ctx = p.ctx
    bucket, prefix = "bench-small", "small/"
    src, dst = ctx.server("s3src"), ctx.server("s3dst")
    uri = f"s3://{bucket}/{prefix}"
    rates: dict[str, float] = {}
    cpu: dict[str, float] = {}

    eng = p.run("engine", lambda: engine(ctx, uri, [uri], [src, dst], explicit=False), n)
    rates["engine"] = n / eng["duration_s"]
    cpu["engine"] = eng["cpu_s"]
    again = p.run("engine noop", lambda: engine(ctx, uri, [uri], [src, dst], explicit=False), n)
    wipe(dst, bucket)
    if p.adaptive:
        res = p.run(
            "engine adaptive", lambda: engine(ctx, uri, [uri], [src, dst], "--adaptive-workers", explicit=False), n
        )
        rates["engine --adaptive-workers"], cpu["engine --adaptive-workers"] = n / res["duration_s"], res["cpu_s"]
        p.row("small", f"engine --adaptive-workers {n} x 16 KiB", round(rates["engine --adaptive-workers"], 1), "obj/s")
        wipe(dst, bucket)
    dry = p.run("engine dry run", lambda: engine(ctx, uri, [uri], [src, dst], "--dry-run", explicit=False), n)
    p.row("small", f"engine {n} x 16 KiB", round(rates["engine"], 1), "obj/s")
    p.requests_row("small", "engine", eng)
    reruns = {}
    for name, flags in (DEFAULT, TUNED):
        res = p.run(name, lambda flags=flags: rclone(src, dst, f"{bucket}/{prefix}", *flags), n)
        rates[name], cpu[name] = n / res["seconds"], res["cpu_s"]
        p.row("small", name, round(rates[name], 1), "obj/s")
        p.requests_row("small", name, res)
        if name == DEFAULT[0]:
            for rname, rflags in (DEFAULT, TUNED):
                reruns[rname] = p.run(
                    f"{rname} noop", lambda rflags=rflags: rclone(src, dst, f"{bucket}/{prefix}", *rflags), n
                )
        wipe(dst, bucket)
    plain_name = f"plain boto3 c={PLAIN_THREADS}"
    res = p.run(plain_name, lambda: worker(
        "plain-copy", "--src", src.endpoint, "--dst", dst.endpoint, "--bucket", bucket, "--prefix", prefix,
        "--concurrency", PLAIN_THREADS, "--mode", "whole"), n)  # fmt: skip
    rates[plain_name], cpu[plain_name] = n / res["seconds"], res["cpu_s"]
    p.row("small", plain_name, round(rates[plain_name], 1), "obj/s")
    p.requests_row("small", plain_name, res)
    wipe(dst, bucket)
    e = rates["engine"]
    p.row("small", "engine / rclone default", ratio(e, rates[DEFAULT[0]]), "x", ">= 4 at 40 ms")
    p.row("small", "engine / rclone tuned", ratio(e, rates[TUNED[0]]), "x", ">= 1.5 at 40 ms, 1.25 at 0")
    p.row("small", f"engine / {plain_name}", ratio(e, rates[plain_name]), "x")
    if p.adaptive:
        a = rates["engine --adaptive-workers"]
        p.row("small", "engine --adaptive-workers / engine", ratio(a, e), "x")
        p.row("small", "engine --adaptive-workers / rclone tuned", ratio(a, rates[TUNED[0]]), "x")
    for tool, seconds in cpu.items():
        p.row("small", f"client CPU per object: {tool}", round(seconds / n * 1000, 2), "ms")
    p.row("small", "client CPU per object: engine less its dry run (start-up, listing)",
          round((cpu["engine"] - dry["cpu_s"]) / n * 1000, 2), "ms")  # fmt: skip
    p.row("small", "engine client CPU / rclone tuned", ratio(cpu["engine"], cpu[TUNED[0]]), "x", "<= 1.5 at 0")
    _noop(p, n, eng, again, reruns)


def _noop(p: Profile, n: int, first: dict[str, Any], again: dict[str, Any], reruns: dict[str, Any]) -> None:
    p.row("noop", f"engine rerun over {n} unchanged objects (summary's duration)", again["duration_s"], "s")
    p.row("noop", "engine rerun, whole command (with start-up)", again["wall_s"], "s")
    p.requests_row("noop", "engine rerun", again)
    for name, res in reruns.items():
        p.row("noop", f"{name} rerun", res["seconds"], "s")
        p.requests_row("noop", f"{name} rerun", res)
    base = reruns[DEFAULT[0]]["seconds"]
    p.row("noop", "engine rerun / rclone default rerun, without start-up", ratio(again["duration_s"], base), "x",
          "<= 0.05")  # fmt: skip
    p.row("noop", "engine rerun / rclone default rerun, whole command", ratio(again["wall_s"], base), "x", "<= 0.05")
    p.row("noop", "engine rerun / its first run", ratio(again["duration_s"], first["duration_s"]), "x")


def _large(p: Profile, count: int, size: int) -> None:
    ctx = p.ctx
    bucket, prefix = "bench-large", "large/"
    total = count * size
    src, dst = ctx.server("s3src"), ctx.server("s3dst")
    uri = f"s3://{bucket}/{prefix}"
    rates: dict[str, float] = {}
    eng = p.run("large engine", lambda: engine(ctx, uri, [uri], [src, dst], explicit=False), count)
    rates["engine"] = total / 1e6 / eng["duration_s"]
    p.requests_row("large", "engine", eng)
    wipe(dst, bucket)
    for name, flags in (DEFAULT, TUNED):
        res = p.run(f"large {name}", lambda flags=flags: rclone(src, dst, f"{bucket}/{prefix}", *flags), count)
        rates[name] = total / 1e6 / res["seconds"]
        p.requests_row("large", name, res)
        wipe(dst, bucket)
    for mode in ("whole", "ranged"):
        name = f"plain boto3 {mode} c=4"
        res = p.run(f"large {name}", lambda mode=mode: worker(
            "plain-copy", "--src", src.endpoint, "--dst", dst.endpoint, "--bucket", bucket, "--prefix", prefix,
            "--concurrency", 4, "--mode", mode), count)  # fmt: skip
        rates[name] = total / 1e6 / res["seconds"]
        wipe(dst, bucket)
    for name, rate in rates.items():
        p.row("large", f"{name} {count} x {size // MiB} MiB", round(rate, 1), "MB/s")
    best = max((DEFAULT[0], TUNED[0]), key=lambda k: rates[k])
    p.row("large", f"engine / best rclone ({best})", ratio(rates["engine"], rates[best]), "x", ">= 1.2 at 40, 1.1 at 0")
    plain = max((k for k in rates if k.startswith("plain")), key=lambda k: rates[k])
    p.row("large", f"engine / best plain ({plain})", ratio(rates["engine"], rates[plain]), "x")


def _fanout(p: Profile, n: int) -> None:
    ctx = p.ctx
    bucket, prefix = "bench-small", "small/"
    src, dst, dst2 = ctx.server("s3src"), ctx.server("s3dst"), ctx.server("s3dst2")
    uri = f"s3://{bucket}/{prefix}"
    secs: dict[str, float] = {}
    eng = p.run("fanout engine", lambda: engine(ctx, uri, [uri, uri], [src, dst, dst2], explicit=False), n)
    secs["engine"] = eng["duration_s"]
    gets = eng["requests"]["s3src"]["ops"].get("GetObject", 0)
    p.row("fanout", "engine: source GETs per object", round(gets / n, 3), "", "== 1", gets == n)
    p.requests_row("fanout", "engine", eng)
    wipe(dst, bucket)
    wipe(dst2, bucket)
    for name, flags in (DEFAULT, TUNED):

        def twice(flags: tuple[str, ...] = flags) -> dict[str, Any]:
            a = rclone(src, dst, f"{bucket}/{prefix}", *flags)
            b = rclone(src, dst2, f"{bucket}/{prefix}", *flags)
            return {"seconds": a["seconds"] + b["seconds"], "runs": [a, b]}

        res = p.run(f"fanout {name} twice", twice, n)
        secs[f"{name}, two runs"] = res["seconds"]
        p.requests_row("fanout", f"{name}, two runs", res)
        wipe(dst, bucket)
        wipe(dst2, bucket)
    plain = f"plain boto3 single-read fan-out c={PLAIN_THREADS}"
    res = p.run(f"fanout {plain}", lambda: worker(
        "plain-fanout", "--src", src.endpoint, "--dst", dst.endpoint, "--dst", dst2.endpoint, "--bucket", bucket,
        "--prefix", prefix, "--concurrency", PLAIN_THREADS), n)  # fmt: skip
    secs[plain] = res["seconds"]
    p.requests_row("fanout", plain, res)
    wipe(dst, bucket)
    wipe(dst2, bucket)
    for name, s in secs.items():
        p.row("fanout", f"{name}: {n} objects to 2 destinations", round(n / s, 1), "obj/s")
    best = min((k for k in secs if k.startswith("rclone")), key=lambda k: secs[k])
    p.row("fanout", f"engine / {best}", ratio(secs[best], secs["engine"]), "x", ">= 1.6 at 40, 1.2 at 0")
    p.row("fanout", f"engine / {plain}", ratio(secs[plain], secs["engine"]), "x")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rtt", type=float, action="append", help="round trip in ms (repeatable; default 0 and 40)")
    ap.add_argument("--only", action="append", choices=CASES, help="run only this case (repeatable)")
    ap.add_argument("--small-n", type=int, default=2000, help="small objects (default 2000)")
    ap.add_argument("--adaptive", action="store_true", help="small: also the engine with --adaptive-workers")
    ap.add_argument("--large-mib", type=int, default=256, help="size of each of the 4 large objects (default 256)")
    args = ap.parse_args(argv)
    rtts = args.rtt or [0.0, 40.0]
    wanted = [c for c in CASES if not args.only or c in args.only]
    OUT.mkdir(exist_ok=True)
    logs, data = OUT / "logs", OUT / "data-wan"
    logs.mkdir(exist_ok=True)
    ctx = Ctx(Sizes(0, 4, args.large_mib * MiB, args.small_n, 16 * 1024, 0, 0), data, logs, wanted=wanted)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    load = [[round(x, 2) for x in os.getloadavg()]]
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"latency profile, {when}, round trips {rtts} ms, cases {wanted}, load {load[0]}", flush=True)
    try:
        for name in ("s3src", "s3dst", "s3dst2"):
            ctx.server(name)
        if {"small", "noop", "fanout"} & set(wanted):
            seed_s3(ctx, "bench-small", "small/", args.small_n, 16 * 1024)
            ctx.server("s3dst2").bucket("bench-small")
        if "large" in wanted:
            seed_s3(ctx, "bench-large", "large/", 4, args.large_mib * MiB)
        for rtt in rtts:
            p = Profile(ctx, rtt, args.adaptive)
            for case in wanted:
                if case == "noop" and "small" in wanted:
                    continue  # measured with small: its first run is the one rerun
                print(f"\n[{case} @ {p.tag}] load {[round(x, 2) for x in os.getloadavg()]}", flush=True)
                t = time.monotonic()
                if case in ("small", "noop"):
                    _small(p, args.small_n)
                elif case == "large":
                    _large(p, 4, args.large_mib * MiB)
                else:
                    _fanout(p, args.small_n)
                print(f"  ({time.monotonic() - t:.0f} s)", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        stop_all()
        shutil.rmtree(data, ignore_errors=True)
        load.append([round(x, 2) for x in os.getloadavg()])
        results = {
            "date": when,
            "command": "bench/wan.py " + " ".join(sys.argv[1:]),
            "rtts_ms": rtts,
            "duration_s": round(time.monotonic() - started, 1),
            "load_average_start_end": load,
            "rows": [r.__dict__ for r in ctx.rows],
            "raw": ctx.raw,
        }
        (OUT / "wan.json").write_text(json.dumps(results, indent=2, default=str))
    _print_table(ctx.rows)
    print(f"\nload average (1, 5, 15 min) at start {load[0]}, at end {load[1]}; wrote {OUT / 'wan.json'}")
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
