"""DatasetPartitionSensor and DatasetPartitionTrigger against the local S3, COS and OSS servers.

Poke mode calls ``execute`` directly (no DAG run needed); the trigger's ``run()`` is driven with asyncio; the
deferrable sensor with a real triggerer (api-server, scheduler, dag-processor and triggerer as subprocesses) is
the last test, marked ``e2e``.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_multicloud.sensors.checks import PartitionSensorError
from airflow_multicloud.sensors.partition import DatasetPartitionSensor
from airflow_multicloud.stores.base import ObjectStore
from airflow_multicloud.triggers.partition import DatasetPartitionTrigger
from multicloud_testbed.services import SECRET_KEY

CLOUDS = ["s3", "cos", "oss"]
PREFIX = "flights/date=2024-01-01/"


class Partition:
    def __init__(self, services: dict[str, Any], cloud: str) -> None:
        svc = services[cloud]
        self.bucket = svc.create_bucket()
        self.store: ObjectStore = svc.store(self.bucket)
        self.uri = f"{cloud}://{self.bucket}/{PREFIX}"

    def put(self, rel: str, data: bytes = b"x") -> None:
        self.store.write(PREFIX + rel, [data])

    def later(self, delay: float, *rels: str) -> threading.Thread:
        """Write objects from a background thread after ``delay`` seconds, as an upstream job would."""

        def write() -> None:
            time.sleep(delay)
            for rel in rels:
                self.put(rel, b"late data")

        t = threading.Thread(target=write, daemon=True)
        t.start()
        return t


@pytest.fixture
def part(request: pytest.FixtureRequest, clean_services: dict[str, Any], airflow_connections: dict[str, str]) -> Any:
    return Partition(clean_services, request.param)


def sensor(uri: str, **kw: Any) -> DatasetPartitionSensor:
    kw.setdefault("poke_interval", 0.2)
    kw.setdefault("timeout", 20)
    kw.setdefault("deferrable", False)
    return DatasetPartitionSensor(task_id=f"wait_{time.monotonic_ns()}", uri=uri, **kw)


# ---- poke mode --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("part", CLOUDS, indirect=True)
def test_marker_appearing_mid_wait_ends_the_wait(part: Partition) -> None:
    part.put("a.csv", b"1,2\n")
    part.put("b.csv", b"3,4\n")
    writer = part.later(1.0, "c.csv", "_SUCCESS")
    t0 = time.monotonic()
    result = sensor(part.uri, marker="_SUCCESS").execute({})
    writer.join()
    assert time.monotonic() - t0 >= 0.9
    assert result == {"uri": part.uri, "keys": ["a.csv", "b.csv", "c.csv"], "count": 3, "total_bytes": 17}


@pytest.mark.parametrize("part", CLOUDS, indirect=True)
def test_glob_waits_for_min_objects(part: Partition) -> None:
    part.put("part-0.parquet", b"aaaa")
    part.put("notes.txt", b"ignored")
    part.put("sub/part-1.parquet", b"bb")
    writer = part.later(0.8, "part-2.parquet")
    result = sensor(part.uri, glob="*part-*.parquet", min_objects=3).execute({})
    writer.join()
    assert result["keys"] == ["part-0.parquet", "part-2.parquet", "sub/part-1.parquet"]
    assert (result["count"], result["total_bytes"]) == (3, 4 + 9 + 2)


@pytest.mark.parametrize("part", CLOUDS, indirect=True)
def test_stable_for_waits_until_writes_stop(part: Partition) -> None:
    part.put("0.bin")
    stop = threading.Event()

    def keep_writing() -> None:  # one new object every 0.3 s for ~1.5 s
        for i in range(1, 6):
            if stop.wait(0.3):
                return
            part.put(f"{i}.bin")

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    t0 = time.monotonic()
    try:
        result = sensor(part.uri, stable_for=1.0).execute({})
    finally:
        stop.set()
        writer.join()
    # ready only once the writer stopped (~1.5 s) and then a quiet second passed
    assert time.monotonic() - t0 >= 2.4
    assert result["count"] == 6


@pytest.mark.parametrize("part", CLOUDS, indirect=True)
def test_timeout_names_the_uri_and_what_was_seen(part: Partition) -> None:
    for rel in ("a", "b", "c"):
        part.put(rel)
    with pytest.raises(AirflowSensorTimeout) as err:
        sensor(part.uri, marker="_SUCCESS", timeout=0.6).execute({})
    msg = str(err.value)
    assert f"{part.uri}_SUCCESS" in msg and "3 objects seen" in msg and "no marker yet" in msg


def test_file_partition_whose_folder_appears_later(tmp_path: Path) -> None:
    folder = tmp_path / "date=2024-01-01"

    def upstream() -> None:
        time.sleep(0.6)
        folder.mkdir()
        (folder / "a.csv").write_bytes(b"12345")
        (folder / "_SUCCESS").write_bytes(b"")

    writer = threading.Thread(target=upstream, daemon=True)
    writer.start()
    result = sensor(f"file://{folder}", marker="_SUCCESS").execute({})
    writer.join()
    assert (result["keys"], result["total_bytes"]) == (["a.csv"], 5)


def test_soft_fail_skips_on_timeout_with_the_message(clean_services: Any, airflow_connections: Any) -> None:
    part = Partition(clean_services, "s3")
    with pytest.raises(AirflowSkipException, match=r"0 match .* of 0 objects seen"):
        sensor(part.uri, glob="*.csv", timeout=0.5, soft_fail=True).execute({})


def test_uri_without_slash_is_a_folder_and_reserved_dir_ignored(clean_services: Any, airflow_connections: Any) -> None:
    part = Partition(clean_services, "s3")
    part.store.write("flights/date=2024-01-010/_SUCCESS", [b""])  # a sibling partition, not ours
    part.put("_multicloud/manifests/run.jsonl", b"{}")
    with pytest.raises(AirflowSensorTimeout, match="0 objects seen"):
        sensor(part.uri.rstrip("/"), marker="_SUCCESS", timeout=0.3).execute({})


def test_wrong_credentials_fail_at_once_even_with_soft_fail(
    clean_services: Any, monkeypatch: pytest.MonkeyPatch, airflow_connections: Any
) -> None:
    part = Partition(clean_services, "cos")
    conn = clean_services["cos"].connection("bad_cos")
    conn["password"] = "wrong-secret"
    monkeypatch.setenv("AIRFLOW_CONN_BAD_COS", json.dumps(conn))
    with pytest.raises(PartitionSensorError, match="cannot check"):
        sensor(part.uri, conn_id="bad_cos", marker="_SUCCESS", soft_fail=True).execute({})


@pytest.mark.parametrize("cloud", CLOUDS)
def test_missing_bucket_fails_at_once(clean_services: Any, airflow_connections: Any, cloud: str) -> None:
    uri = {"s3": "s3://no-such-bucket/p/", "cos": "cos://no-such-bucket-1250000000/p/", "oss": "oss://no-such/p/"}
    with pytest.raises(PartitionSensorError, match="cannot check"):
        sensor(uri[cloud], glob="*").execute({})


def test_throttling_only_delays(clean_services: Any, airflow_connections: Any) -> None:
    part = Partition(clean_services, "s3")
    part.put("_SUCCESS")
    clean_services["s3"].faults.add("status", status=503, code="SlowDown", operation="ListObjectsV2", times=4)
    assert sensor(part.uri, marker="_SUCCESS").execute({})["count"] == 0
    lists = [r for r in clean_services["s3"].requests if r.operation == "ListObjectsV2"]
    assert len(lists) >= 5  # boto3's own 3 attempts failed, the sensor looked again at the next poke


# ---- parse-time validation --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({}, "exactly one of marker=, glob= or stable_for= .got none of them"),
        ({"marker": "_SUCCESS", "glob": "*.csv"}, r"got marker=\.\.\., glob=\.\.\."),
        ({"glob": "*.csv", "stable_for": 60}, r"got glob=\.\.\., stable_for=\.\.\."),
        ({"glob": "*.csv", "min_objects": 0}, "min_objects=0"),
        ({"marker": "/_SUCCESS"}, "relative to the partition"),
        ({"marker": ""}, "relative to the partition"),
        ({"stable_for": 0}, "stable_for=0 must be a positive"),
        ({"stable_for": 60, "mode": "reschedule"}, "mode='reschedule'"),
    ],
)
def test_invalid_arguments_fail_at_parse_time(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DatasetPartitionSensor(task_id="w", uri="s3://raw/x/", **kw)


# ---- trigger ----------------------------------------------------------------------------------------------------
async def first_event(trigger: DatasetPartitionTrigger, limit: float = 20) -> dict[str, Any]:
    gen = trigger.run()
    try:
        event = await asyncio.wait_for(gen.__anext__(), limit)
    finally:
        await gen.aclose()
    return dict(event.payload)


@pytest.mark.parametrize("part", CLOUDS, indirect=True)
def test_trigger_fires_success_when_the_marker_appears(part: Partition) -> None:
    part.put("a.csv", b"abc")
    writer = part.later(0.6, "_SUCCESS")
    trigger = DatasetPartitionTrigger(uri=part.uri, marker="_SUCCESS", poke_interval=0.2)
    event = asyncio.run(first_event(trigger))
    writer.join()
    assert event["status"] == "success"
    assert (event["keys"], event["count"], event["total_bytes"]) == (["a.csv"], 1, 3)


def test_trigger_stable_for_continues_the_sensors_quiet_period(clean_services: Any, airflow_connections: Any) -> None:
    from airflow_multicloud.hooks.factory import open_location
    from airflow_multicloud.sensors.checks import PartitionCheck

    part = Partition(clean_services, "cos")
    part.put("a.bin", b"12")
    first = PartitionCheck(part.uri, stable_for=1.0)
    assert not first.check(open_location(part.uri)).ready  # the sensor's look before deferring
    time.sleep(0.8)  # the hand-over to the triggerer takes a while
    t0 = time.monotonic()
    trigger = DatasetPartitionTrigger(
        uri=part.uri, stable_for=1.0, poke_interval=0.1, stable_state=first.state.to_json()
    )
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "success" and event["keys"] == ["a.bin"] and "unchanged for" in event["message"]
    assert time.monotonic() - t0 < 0.7  # counted from the sensor's look, not restarted in the triggerer


def test_trigger_keeps_the_loop_free_while_checking(clean_services: Any, airflow_connections: Any) -> None:
    """Blocking SDK calls run in threads: a ticker on the same loop must keep ticking during slow listings."""
    part = Partition(clean_services, "oss")
    clean_services["oss"].faults.add("latency", latency=0.5, method="GET")
    ticks = 0

    async def main() -> dict[str, Any]:
        nonlocal ticks

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        ticker = asyncio.create_task(tick())
        trigger = DatasetPartitionTrigger(uri=part.uri, glob="*", poke_interval=0.1, deadline=time.time() + 1.0)
        try:
            return await first_event(trigger)
        finally:
            ticker.cancel()

    event = asyncio.run(main())
    assert event["status"] == "timeout" and "0 match" in event["message"]
    assert ticks >= 10


@pytest.mark.parametrize(
    ("conn", "match"),
    [("nope_cos", "'nope_cos' .* is not defined"), ("bad_s3", "SignatureDoesNotMatch|denied|rejected")],
)
def test_trigger_error_event_for_a_wrong_connection(
    clean_services: Any, monkeypatch: pytest.MonkeyPatch, airflow_connections: Any, conn: str, match: str
) -> None:
    cloud = "cos" if conn == "nope_cos" else "s3"
    part = Partition(clean_services, cloud)
    bad = clean_services["s3"].connection("bad_s3")
    bad["password"] = "wrong-secret"
    monkeypatch.setenv("AIRFLOW_CONN_BAD_S3", json.dumps(bad))
    trigger = DatasetPartitionTrigger(uri=part.uri, conn_id=conn, marker="_SUCCESS", poke_interval=0.1)
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "error"
    assert part.uri in event["message"]
    assert re.search(match, event["message"], flags=re.I), event["message"]


def test_trigger_serialize_round_trip_without_secrets(clean_services: Any, airflow_connections: Any) -> None:
    import importlib

    trigger = DatasetPartitionTrigger(
        uri="s3://raw/flights/", stable_for=30.0, poke_interval=5, deadline=123.0, stable_state={"count": 2}
    )
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs  # plain JSON: storable in the trigger table
    assert SECRET_KEY not in json.dumps(kwargs) and "password" not in json.dumps(kwargs)


@pytest.fixture
def deferred_sensor(clean_services: Any, airflow_connections: Any) -> Iterator[tuple[Partition, Any]]:
    part = Partition(clean_services, "s3")
    part.put("0.bin")
    yield part, sensor(part.uri, stable_for=30, deferrable=True, timeout=600, poke_interval=7)


def test_deferrable_sensor_returns_without_deferring_when_ready(clean_services: Any, airflow_connections: Any) -> None:
    part = Partition(clean_services, "oss")
    part.put("_SUCCESS")
    assert sensor(part.uri, marker="_SUCCESS", deferrable=True).execute({})["count"] == 0


def test_deferrable_sensor_defers_with_its_state_and_resumes(deferred_sensor: tuple[Partition, Any]) -> None:
    part, s = deferred_sensor
    with pytest.raises(TaskDeferred) as deferred:
        s.execute({})
    trigger = deferred.value.trigger
    assert deferred.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert kwargs["uri"] == part.uri and kwargs["poke_interval"] == 7 and kwargs["stable_for"] == 30
    assert kwargs["stable_state"]["count"] == 1  # the first look is carried over, not repeated
    assert 590 < kwargs["deadline"] - time.time() <= 600
    ok = {"status": "success", "uri": part.uri, "keys": ["0.bin"], "count": 1, "total_bytes": 1, "message": "m"}
    assert s.execute_complete({}, ok) == {"uri": part.uri, "keys": ["0.bin"], "count": 1, "total_bytes": 1}
    with pytest.raises(AirflowSensorTimeout, match="1 objects seen"):
        s.execute_complete({}, {"status": "timeout", "message": "waiting for x: 1 objects seen"})
    with pytest.raises(PartitionSensorError, match="boom"):
        s.execute_complete({}, {"status": "error", "message": "boom"})
