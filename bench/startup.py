"""The CLI's start-up, against another tree of the package (today's main by default), in one run.

For each tree: wall time (and CPU seconds, steadier on a busy machine) of ``multicloud --help`` and
``multicloud --version``, and the time from the command's start to the first request the local S3 server sees for a
small ``replicate`` (three 64 KiB files from a local folder to ``s3://``; connections through ``AIRFLOW_CONN_*``, as
a user sets them), and that replicate's wall and CPU time.
Runs alternate between the trees; each figure is the median of ``--repeat`` runs after one warm-up run each.

    git worktree add /tmp/main-872e31f 872e31f
    .venv/bin/python bench/startup.py --peer /tmp/main-872e31f [--repeat 5] [--json .bench/startup.json]

A tree is put first on PYTHONPATH, so its ``airflow_multicloud`` is the one imported (the venv's editable install
of the other comes after it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from multicloud_testbed.s3_server import S3Service  # noqa: E402


class _TimedLog(list[Any]):
    """The server's request log, also noting when each request arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: Any) -> None:
        self.times.append(time.time())
        super().append(item)

    def clear(self) -> None:
        self.times.clear()
        super().clear()


def _env(tree: Path, home: Path, server: S3Service) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW"))}
    env.update(
        PYTHONPATH=str(tree),
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_CONN_AWS_DEFAULT=json.dumps(server.connection("aws_default")),
    )
    return env


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wall(argv: list[str], env: dict[str, str], notes: set[str], cpu: list[float]) -> float:
    """Seconds the command took (its CPU seconds appended to ``cpu``); a command the tree does not know (main had
    no --version) is noted, not fatal."""
    start, cpu0 = time.time(), _cpu()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, cwd=env["AIRFLOW_HOME"])
    took = time.time() - start
    cpu.append(_cpu() - cpu0)
    if done.returncode != 0:
        notes.add(f"{' '.join(argv[3:])} exited {done.returncode}: {done.stderr.strip().splitlines()[-1][:100]}")
    return took


def _first_request(
    cli: list[str], env: dict[str, str], src: Path, server: S3Service, bucket: str, cpu: list[float] | None = None
) -> tuple[float, float]:
    log = server.middleware.requests
    with server.middleware._lock:
        log.clear()
    dest = f"s3://{bucket}/run-{time.time_ns()}/"
    start, cpu0 = time.time(), _cpu()
    done = subprocess.run(
        [*cli, "replicate", f"file://{src}/", dest, "--progress-interval", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=env["AIRFLOW_HOME"],  # not the repository: ``-m`` puts the working folder first on sys.path
    )
    end = time.time()
    if cpu is not None:
        cpu.append(_cpu() - cpu0)
    if done.returncode != 0:
        raise RuntimeError(f"replicate exited {done.returncode}: {done.stderr[-2000:]}")
    return log.times[0] - start, end - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", type=Path, required=True, help="the other tree, e.g. a worktree of main")
    ap.add_argument("--product", type=Path, default=REPO, help="this tree (default: the repository of this script)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    server = S3Service().start()
    server.middleware.requests = _TimedLog()
    bucket = server.create_bucket()
    trees = {"peer": args.peer.resolve(), "product": args.product.resolve()}
    cli = [sys.executable, "-m", "airflow_multicloud.cli.main"]
    figures: dict[str, dict[str, list[float]]] = {k: {} for k in trees}
    notes: dict[str, set[str]] = {k: set() for k in trees}
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for i in range(3):
            (src / f"part-{i}.csv").write_bytes(os.urandom(64 * 1024))
        envs = {}
        for name, tree in trees.items():
            (Path(tmp) / name).mkdir()
            envs[name] = _env(tree, Path(tmp) / name, server)
            _first_request(cli, envs[name], src, server, bucket)  # warm-up: caches, a first airflow.cfg
        for _ in range(args.repeat):
            for name in trees:
                env, f = envs[name], figures[name]
                help_cpu = f.setdefault("help_cpu_s", [])
                f.setdefault("help_s", []).append(_wall([*cli, "--help"], env, notes[name], help_cpu))
                version_cpu = f.setdefault("version_cpu_s", [])
                f.setdefault("version_s", []).append(_wall([*cli, "--version"], env, notes[name], version_cpu))
                first, wall = _first_request(cli, env, src, server, bucket, f.setdefault("replicate_cpu_s", []))
                f.setdefault("first_request_s", []).append(first)
                f.setdefault("replicate_wall_s", []).append(wall)
    server.stop()

    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; medians of {args.repeat} runs")
    print(f"{'figure':<22}{'peer':>10}{'product':>10}{'peer/product':>14}")
    result: dict[str, Any] = {"load": load, "repeat": args.repeat, "trees": {k: str(v) for k, v in trees.items()}}
    keys = ("help_s", "help_cpu_s", "version_s", "version_cpu_s", "first_request_s", "replicate_wall_s")
    for key in (*keys, "replicate_cpu_s"):
        peer, ours = (statistics.median(figures[n].get(key, [float("nan")])) for n in ("peer", "product"))
        print(f"{key:<22}{peer:>10.3f}{ours:>10.3f}{peer / ours:>13.1f}x")
        result[key] = {"peer": peer, "product": ours, "runs": {n: figures[n].get(key) for n in trees}}
    for name in trees:
        for note in sorted(notes[name]):
            print(f"note ({name}): {note}")
    result["notes"] = {k: sorted(v) for k, v in notes.items()}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
