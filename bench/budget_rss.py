"""Peak RSS of one ``multicloud replicate`` child copying 30 objects of 15 MiB COS -> OSS at default settings.

    .venv/bin/python bench/budget_rss.py [--product DIR] [--objects 30] [--size-mib 15] [-- extra replicate flags]

The local COS and OSS (disk-backed) run in this process; the engine is a child run under ``/usr/bin/time -v``
whose "Maximum resident set size" is printed with the run's summary counts. ``--product DIR`` puts ``DIR``
first on the child's PYTHONPATH, to measure another copy of the code (e.g. the commit before a change).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from airflow_multicloud.cli.serve import connection_env, start_services

MiB = 1024 * 1024


def _chunks(size: int) -> Iterator[bytes]:
    for start in range(0, size, MiB):
        yield os.urandom(min(MiB, size - start))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--product", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--objects", type=int, default=30)
    ap.add_argument("--size-mib", type=int, default=15)
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="budget-rss-") as data:
        services = start_services(["cos", "oss"], data_dir=data)
        try:
            src, dst = services["cos"].create_bucket(), services["oss"].create_bucket()
            store = services["cos"].store(src)
            for i in range(args.objects):
                store.write(f"data/part-{i:03d}.bin", _chunks(args.size_mib * MiB))
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(connection_env(services, ["cos", "oss"]), PYTHONPATH=args.product)
            cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "airflow_multicloud.cli.main", "replicate"]
            cmd += [f"cos://{src}/data/", f"oss://{dst}/data/", "--json", *args.extra]
            run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        finally:
            for svc in services.values():
                svc.stop()
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    try:
        summary = json.loads(run.stdout[run.stdout.index("{") :])
        counts = {k: summary.get(k) for k in ("copied", "failed", "duration_s")}
    except ValueError:
        counts = {"stdout": run.stdout[-500:], "stderr": run.stderr[-2000:]}
    peak = int(rss.group(1)) / 1024 if rss else None
    print(json.dumps({"exit": run.returncode, "peak_rss_mib": peak, **counts}))
    return 0 if run.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
