"""``large_partition_replication`` on a real CeleryExecutor with two workers sharing one partition.

Airflow (api-server, dag-processor, scheduler, triggerer; CeleryExecutor; a fresh PostgreSQL database as metadata
DB and Celery result backend; the local Redis as broker, under a key prefix of this run) and two
``airflow celery worker`` processes (concurrency 1, prefetch 1) run as subprocesses; the local S3/COS/OSS servers
run in this process. The sample DAG file itself, copied alone into a temporary dags folder (the repo's other DAGs
would only cost parse time), plans one day of 16 objects into 4 shards and copies each shard to COS and OSS in a
mapped task. Checks: the run and every mapped ``copy`` succeeded; both workers ran shards (task instance
``hostname``, and each worker's own log); the plan's shards cover every object once; every source object is on
both replicas with the same bytes; each object was read from S3 once and written to each replica once (the
servers' request logs), and each replica's shard manifests list each object as copied exactly once.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from airflow_multicloud.cli.serve import connection_env
from airflow_multicloud.replication.manifest import is_consolidated, read_manifest
from airflow_multicloud.replication.model import Location
from airflow_multicloud.replication.plan_store import read_shard
from multicloud_testbed import SAMPLE_DAGS
from multicloud_testbed.airflow_stack import AirflowStack, celery_problem, postgres_problem

pytestmark = pytest.mark.e2e

DAG_ID = "large_partition_replication"
DAY = "2013-01-04"
LOGICAL_DATE = "2013-01-05T00:00:00Z"  # a run at D covers the interval that ends at D: the partition of the day before
PREFIX = "flights/"
PARTITION = f"{PREFIX}date={DAY}/"
OBJECTS, SHARDS, WORKERS = 16, 4, 2


@pytest.fixture
def celery_services() -> None:
    if problem := postgres_problem():
        pytest.skip(
            f"needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth, may CREATE DATABASE): {problem}. "
            "Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
    if problem := celery_problem():
        pytest.skip(
            f"needs the Celery provider and Redis on 127.0.0.1:6379: {problem}. Install the dev extra "
            "(pip install -c constraints.txt -e '.[dev]') and start Redis (redis-server --daemonize yes)"
        )


def partition_files() -> dict[str, bytes]:
    """16 CSV files of 8..150 KB, 1.2 MB in all (different sizes, so the byte-balanced shards differ), by key."""
    files = {}
    for i in range(OBJECTS):
        rows = "".join(f"{i},{j},{(i * 7919 + j * 104729) % 1000003:07d}\n" for j in range(600 * (i + 1)))
        files[f"{PARTITION}part-{i:02d}.csv"] = ("part,row,value\n" + rows).encode()
    return files


def run_state(stack: AirflowStack, run_id: str) -> str:
    return str(stack.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"])


def task_instances(stack: AirflowStack, run_id: str) -> list[dict[str, Any]]:
    return list(stack.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"])


def xcom(stack: AirflowStack, run_id: str, task_id: str, map_index: int = -1) -> Any:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    return stack.rest("GET", f"{path}?map_index={map_index}")["value"]


def worker_map_indexes(log: str) -> list[int]:
    """The ``copy`` map indexes a worker's log says it executed (one "Executing workload" line per Celery task)."""
    found = []
    for line in log.splitlines():
        if "Executing workload in Celery" in line and "task_id='copy'" in line:
            match = re.search(r"task_id='copy'.*?map_index=(-?\d+)", line)
            assert match, line
            found.append(int(match.group(1)))
    return found


def check_replica(svc: Any, bucket: str, files: dict[str, bytes]) -> None:
    """Every source object is on the replica with the same bytes, and was written there by exactly one PUT."""
    store = svc.store(bucket)
    listed = {o.key: o.size for o in store.list(PREFIX) if "/_multicloud/" not in o.key}
    assert listed == {k: len(v) for k, v in files.items()}, f"{svc.name}: keys or sizes differ"
    for key, data in files.items():
        assert b"".join(store.read(key)) == data, f"{svc.name}://{bucket}/{key}: bytes differ"
    writes = Counter(
        r.key
        for r in svc.requests
        if r.method in ("PUT", "POST") and r.key in files and 200 <= r.status < 300  # PutObject or multipart steps
    )
    assert writes == dict.fromkeys(files, 1), f"{svc.name}: objects not written exactly once: {writes}"
    # each shard wrote a manifest; together they list every object as copied, each once
    copied: Counter[str] = Counter()
    manifests = [o.key for o in store.list(f"{PARTITION}_multicloud/manifests/") if not is_consolidated(o.key)]
    assert len(manifests) == SHARDS, manifests
    for key in manifests:
        for rec in read_manifest(store, key)[1]:
            assert rec["status"] == "copied", rec
            copied[PARTITION + rec["key"]] += 1
    assert copied == dict.fromkeys(files, 1), f"{svc.name}: manifests: {copied}"


@pytest.mark.timeout(420)
def test_two_celery_workers_share_one_partition(celery_services: None, clouds: dict[str, Any], tmp_path: Path) -> None:
    s3, cos, oss = clouds["s3"], clouds["cos"], clouds["oss"]
    raw, cb, ob = s3.create_bucket(), cos.create_bucket(), oss.create_bucket()
    files = partition_files()
    source = s3.store(raw)
    for key, data in files.items():
        source.write(key, [data])
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(SAMPLE_DAGS / f"{DAG_ID}.py", dags)
    env = {
        **connection_env(clouds),
        "MULTICLOUD_LARGE_SOURCE": f"s3://{raw}/{PREFIX}",
        "MULTICLOUD_LARGE_DESTINATIONS": f"cos://{cb}/{PREFIX},oss://{ob}/{PREFIX}",
        "MULTICLOUD_LARGE_SHARDS": str(SHARDS),
        # no scheduled runs: unpausing a daily DAG would start one for yesterday, whose partition is not there
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    }
    stack = AirflowStack(
        tmp_path / "home",
        dags,
        db="postgres",
        executor="CeleryExecutor",
        celery_workers=WORKERS,
        parallelism=4,
        extra_env=env,
    )
    t0 = time.monotonic()

    def phase(what: str) -> None:  # printed with the failure report: shows where the minutes went
        print(f"[{time.monotonic() - t0:6.1f} s] {what}")

    try:
        stack.start()
        stack.wait_healthy(timeout=150)
        # both consume before any task is queued, or the first one up could take every shard
        stack.wait_workers_ready(timeout=90)
        phase("Airflow healthy, both Celery workers ready")
        stack.unpause(DAG_ID)
        for svc in clouds.values():
            svc.clear_log()  # from here on the logs hold the run's requests only
        # Each source read waits 3 s, as over a long link: a shard then outlasts the seconds a worker spends
        # winding up its previous task (the plan), so both workers are free to take shards. Without it one
        # worker could run all four 0.5 s shards while the other was still finishing the plan (seen in CI).
        s3.faults.add("latency", latency=3.0, operation="GetObject", key=f"{PARTITION}part-*")
        run_id = stack.rest("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": LOGICAL_DATE})["dag_run_id"]
        state = stack.wait_for(
            f"run {run_id} to finish",
            lambda: (s := run_state(stack, run_id)) in ("success", "failed") and s,
            timeout=180,
            interval=2,
        )
        phase(f"run {state}")
        tis = task_instances(stack, run_id)
        assert state == "success", f"{tis}\n{stack.logs_tail()}"

        by_task = {(t["task_id"], t["map_index"]): t for t in tis}
        assert {t["state"] for t in tis} == {"success"}, [(k, t["state"]) for k, t in by_task.items()]
        copies = sorted((t for t in tis if t["task_id"] == "copy"), key=lambda t: t["map_index"])
        assert [t["map_index"] for t in copies] == list(range(SHARDS)), by_task.keys()
        assert all(t["try_number"] == 1 for t in tis), [(k, t["try_number"]) for k, t in by_task.items()]

        # both workers ran shards, and each shard ran on exactly one of them, the one its task instance names
        hosts = dict(stack.workers)  # component name -> Celery hostname, e.g. worker1 -> worker1@<host>
        assert len(hosts) == WORKERS and len(set(hosts.values())) == WORKERS, hosts
        ran = {name: worker_map_indexes(stack.log(name, since_start=True)) for name in hosts}
        assert sorted(i for found in ran.values() for i in found) == list(range(SHARDS)), ran
        assert all(ran.values()), f"a worker ran no shard: {ran}"
        for name, found in ran.items():
            assert {copies[i]["hostname"] for i in found} == {hosts[name]}, (name, found, copies)
        assert {t["hostname"] for t in copies} == set(hosts.values())
        print("shards per worker:", ran)

        # the plan split the partition into disjoint shards that cover it; each shard copied its objects
        # (XCom carries references to the plan object, written once next to the first replica)
        refs = xcom(stack, run_id, "plan")
        assert all(len(json.dumps(r)) < 1024 for r in refs), refs
        shards = [read_shard(Location(cos.store(cb), PARTITION), r)[1] for r in refs]
        entries = [e.to_json() for s in shards for e in s]
        planned = Counter(PARTITION + e["obj"]["rel"] for e in entries)
        assert len(shards) == SHARDS and planned == dict.fromkeys(files, 1), planned
        assert all(e["actions"] == {"0": "copy", "1": "copy"} for e in entries), entries
        summaries = [xcom(stack, run_id, "copy", i) for i in range(SHARDS)]
        for shard, summary in zip(shards, summaries, strict=True):
            assert summary["failed"] == 0 and summary["copied"] == 2 * len(shard), summary
        assert sum(s["copied"] for s in summaries) == 2 * OBJECTS

        # every object read from S3 once, for both replicas together
        reads = Counter(r.key for r in s3.requests if r.operation == "GetObject" and 200 <= r.status < 300)
        assert reads == dict.fromkeys(files, 1), f"source objects not read exactly once: {reads}"
        check_replica(cos, cb, files)
        check_replica(oss, ob, files)
        phase("workers, shards, replicas, request logs and manifests checked")
    finally:
        stack.stop()  # raises if any Airflow process outlives it; deletes the Redis keys, drops the database
        phase("stopped")
    assert stack.redis_keys() == [], "Redis keys left behind"
