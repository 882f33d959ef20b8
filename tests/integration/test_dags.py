"""The sample DAGs: they parse, and they run through dag.test() against the local clouds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_multicloud.cli.serve import connection_env
from airflow_multicloud.dag_factory import DatasetConfigError, load_entries
from multicloud_testbed.fixtures import run_dag

DAGS = Path(__file__).resolve().parents[2] / "dags"
CSV = b'id,name,note\n1,alpha,"multi\nline"\n2,beta,plain\n3,gamma,"with, comma"\n'


def _partition(store: Any, prefix: str, day: str) -> None:
    base = f"{prefix}date={day}/"
    store.write(base + "part-0.csv", [CSV])
    store.write(base + "part-1.jsonl", [b'{"id": 1}\n{"id": 2}\n'])
    store.write(base + "_SUCCESS", [b""])


def test_every_sample_dag_parses_without_import_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert {
        "nightly_replication",
        "restore_drill",
        "large_partition_replication",
        "replicate_nycflights_weather",
    } <= set(bag.dag_ids)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "source": "s4://b/p/", "destinations": ["oss://bkt/p/"]}, r"entry 1 \('x'\): field 'source'"),
        ({"name": "x", "source": "s3://bkt/p/", "destinations": []}, r"field 'destinations'"),
        (
            {"name": "x", "source": "s3://bkt/p/", "destinations": ["oss://bkt/q/"], "schedul": "@daily"},
            r"field 'schedul': unknown field",
        ),
        ({"name": "x", "source": "s3://bkt/p/", "destinations": ["oss://bkt/q/"], "mode": "sync"}, r"field 'mode'"),
        (
            {"name": "x", "source": "s3://bkt/p/", "destinations": ["oss://bkt/q/"], "schedule": "daily"},
            r"field 'schedule'",
        ),
        ({"name": "x", "source": "s3://bkt/p/", "destinations": ["oss://bkt/q/"], "ready": {}}, r"field 'ready'"),
    ],
)
def test_bad_config_entry_names_the_entry_and_field(tmp_path: Path, entry: dict[str, Any], message: str) -> None:
    import yaml

    path = tmp_path / "datasets.yaml"
    path.write_text(yaml.safe_dump({"datasets": [entry]}))
    with pytest.raises(DatasetConfigError, match=message):
        load_entries(path)


def test_bad_config_shows_as_an_import_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  - name: broken\n    source: s3://raw/x/\n")
    monkeypatch.setenv("MULTICLOUD_DATASETS_YAML", str(bad))
    bag = DagBag(dag_folder=str(DAGS / "config_datasets.py"))
    (error,) = bag.import_errors.values()
    assert "entry 1 ('broken'): field 'destinations'" in error


def test_config_allows_unverified_objects_under_the_operators_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    config = tmp_path / "datasets.yaml"
    config.write_text(
        "datasets:\n  - name: lenient\n    source: s3://raw/x/\n    destinations: [oss://bkt/x/]\n"
        "    validate: {level: quick, allow_unverified: true}\n"
    )
    monkeypatch.setenv("MULTICLOUD_DATASETS_YAML", str(config))
    bag = DagBag(dag_folder=str(DAGS / "config_datasets.py"))
    assert bag.import_errors == {}
    assert bag.dags["replicate_lenient"].get_task("validate").allow_unverified is True


def test_nightly_replication_runs_then_rerun_copies_nothing(
    airflow_home: dict[str, str], clean_services: dict[str, Any]
) -> None:
    s3, cos, oss = clean_services["s3"], clean_services["cos"], clean_services["oss"]
    raw, cb, ob = s3.create_bucket(), cos.create_bucket(), oss.create_bucket()
    _partition(s3.store(raw), "flights/", "2013-01-02")
    _partition(s3.store(raw), "flights/", "2013-01-03")
    env = {
        **connection_env(clean_services),
        "MULTICLOUD_NIGHTLY_SOURCE": f"s3://{raw}/flights/",
        "MULTICLOUD_NIGHTLY_DESTINATIONS": f"cos://{cb}/flights/,oss://{ob}/flights/",
    }
    dag_file = str(DAGS / "nightly_replication.py")
    # a manual run at logical date D covers the interval that ends at D: the partition of the day before
    first = run_dag(
        airflow_home, dag_file, "nightly_replication", logical_date="2013-01-03T00:00:00+00:00", extra_env=env
    )
    assert first["state"] == "success", first["log"][-4000:]
    summary = first["xcom"]["replicate"]
    assert (summary["objects"], summary["copied"], summary["failed"]) == (3, 6, 0)
    for store in (cos.store(cb), oss.store(ob)):
        keys = {o.key for o in store.list("flights/") if "_multicloud" not in o.key}
        assert keys == {f"flights/date=2013-01-02/{n}" for n in ("part-0.csv", "part-1.jsonl", "_SUCCESS")}
    events = {e["uri"].rstrip("/"): e["extra"] for e in first["asset_events"]}
    assert set(events) == {f"cos://{cb}/flights", f"oss://{ob}/flights"}, "one event per replica"
    for extra in events.values():
        assert extra["ok"] is True and extra["objects"] == 3 and extra["copied"] == 3
        assert extra["rows"] == 5 and extra["manifest"].endswith(".jsonl.gz")

    again = run_dag(
        airflow_home, dag_file, "nightly_replication", logical_date="2013-01-03T00:00:00+00:00", extra_env=env
    )
    assert again["state"] == "success"
    assert (again["xcom"]["replicate"]["copied"], again["xcom"]["replicate"]["skipped"]) == (0, 6)


def test_restore_drill_restores_and_proves_a_day(
    airflow_home: dict[str, str], clean_services: dict[str, Any], airflow_connections: dict[str, str]
) -> None:
    from airflow_multicloud.hooks.factory import open_location
    from airflow_multicloud.replication.engine import ReplicationOptions, replicate

    s3, cos = clean_services["s3"], clean_services["cos"]
    raw, replica, scratch = s3.create_bucket(), cos.create_bucket(), s3.create_bucket()
    _partition(s3.store(raw), "flights/", "2013-01-05")
    replicate(
        open_location(f"s3://{raw}/flights/date=2013-01-05/"),
        [open_location(f"cos://{replica}/flights/date=2013-01-05/")],
        ReplicationOptions(progress_interval=0),
    )
    env = {
        **connection_env(clean_services),
        "MULTICLOUD_DRILL_REPLICA": f"cos://{replica}/flights/",
        "MULTICLOUD_DRILL_SCRATCH": f"s3://{scratch}/restored/",
    }

    def drill() -> dict[str, Any]:
        return run_dag(
            airflow_home,
            str(DAGS / "restore_drill.py"),
            "restore_drill",
            conf={"partition": "2013-01-05"},
            extra_env=env,
        )

    out = drill()
    assert out["state"] == "success", out["log"][-4000:]
    restored = {o.key for o in s3.store(scratch).list("restored/") if "_multicloud" not in o.key}
    assert restored == {f"restored/date=2013-01-05/{n}" for n in ("part-0.csv", "part-1.jsonl", "_SUCCESS")}
    result = out["xcom"]["restore_and_prove"]
    assert (result["ok"], result["objects"], result["rows"]) == (True, 3, 5)
    assert result["bytes"] == len(CSV) + 20 and result["restore_s"] > 0 and result["bytes_per_s"] > 0

    # overwritten since that night with bytes of the same size: the replica no longer holds what was copied
    cos.store(replica).write("flights/date=2013-01-05/part-0.csv", [CSV.replace(b"alpha", b"omega")])
    out = drill()
    assert (out["state"], out["tasks"]) == ("failed", {"restore_and_prove": "failed"})


def test_large_partition_is_planned_once_and_copied_by_mapped_shards(
    airflow_home: dict[str, str], clean_services: dict[str, Any]
) -> None:
    s3, oss = clean_services["s3"], clean_services["oss"]
    raw, ob = s3.create_bucket(), oss.create_bucket()
    store = s3.store(raw)
    for i in range(12):
        store.write(f"flights/date=2013-01-04/part-{i:02d}.csv", [CSV * (i + 1)])
    env = {
        **connection_env(clean_services),
        "MULTICLOUD_LARGE_SOURCE": f"s3://{raw}/flights/",
        "MULTICLOUD_LARGE_DESTINATIONS": f"oss://{ob}/flights/",
        "MULTICLOUD_LARGE_SHARDS": "3",
    }
    out = run_dag(
        airflow_home,
        str(DAGS / "large_partition_replication.py"),
        "large_partition_replication",
        logical_date="2013-01-05T00:00:00+00:00",
        extra_env=env,
    )
    assert out["state"] == "success", out["log"][-4000:]
    refs = out["xcom"]["plan"]  # references to the plan object, not the plan
    assert len(refs) == 3 and all(len(json.dumps(r)) < 1024 and "entries" not in r for r in refs), refs
    shards = [v for k, v in out["xcom"].items() if k.startswith("copy[")]
    assert len(shards) == 3 and sum(s["copied"] for s in shards) == 12
    assert all(s["copied"] >= 3 for s in shards), "shards of about equal bytes"
    copied = {o.key for o in oss.store(ob).list("flights/") if "_multicloud" not in o.key}
    assert len(copied) == 12


def test_yaml_configured_dataset_runs(airflow_home: dict[str, str], clean_services: dict[str, Any]) -> None:
    s3, cos, oss = clean_services["s3"], clean_services["cos"], clean_services["oss"]
    raw, cb, ob = s3.create_bucket(), cos.create_bucket(), oss.create_bucket()
    _partition(s3.store(raw), "weather/", "2013-01-06")
    config = Path(airflow_home["AIRFLOW_HOME"]) / "datasets.yaml"
    config.write_text(
        "datasets:\n"
        "  - name: weather_test\n"
        "    start_date: 2013-01-01\n"
        f"    source: s3://{raw}/weather/date={{partition}}/\n"
        "    destinations:\n"
        f"      - cos://{cb}/weather/date={{partition}}/\n"
        f"      - {{uri: 'oss://{ob}/weather/date={{partition}}/', conn_id: oss_default}}\n"
        "    ready: {glob: '*.csv', min_objects: 1}\n"
        "    validate: {level: full, rows: true}\n"
    )
    out = run_dag(
        airflow_home,
        str(DAGS / "config_datasets.py"),
        "replicate_weather_test",
        logical_date="2013-01-07T00:00:00+00:00",
        extra_env={**connection_env(clean_services), "MULTICLOUD_DATASETS_YAML": str(config)},
    )
    assert out["state"] == "success", out["log"][-4000:]
    assert out["xcom"]["replicate"]["copied"] == 6
    assert {e["extra"]["ok"] for e in out["asset_events"]} == {True}
