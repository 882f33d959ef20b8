"""Replica validation through the real SDKs against the local S3 (moto), COS and OSS servers."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from airflow_multicloud.cli.main import main
from airflow_multicloud.replication.copy import CopyOptions
from airflow_multicloud.replication.engine import ReplicationOptions, replicate
from airflow_multicloud.replication.model import Location
from airflow_multicloud.stores.base import MiB, TransferConfig
from airflow_multicloud.validation.compare import compare_replicas
from airflow_multicloud.validation.report import ValidationReport

# the size: 5,000 objects (~40-75 s here, mostly writing them and replicating them through moto)
N_OBJECTS = int(os.environ.get("MULTICLOUD_VALIDATE_OBJECTS", "2500"))  # three listing pages
SMALL = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB, max_concurrency=2)


def opts(**kw: Any) -> ReplicationOptions:
    kw.setdefault("copy", CopyOptions(object_retries=1, retry_backoff=0.01))
    return ReplicationOptions(progress_interval=0, **kw)


def fresh(services: dict[str, Any], name: str, files: dict[str, bytes] | None = None, prefix: str = "ds/",
          transfer: TransferConfig = SMALL) -> Location:  # fmt: skip
    svc = services[name]
    store = svc.store(svc.create_bucket(), transfer=transfer)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: store.write(prefix + kv[0], [kv[1]]), (files or {}).items()))
    return Location(store, prefix)


def kinds(report: ValidationReport, i: int = 0) -> dict[str, str]:
    return {d.key: d.kind for d in report.replicas[i].differences}


def data_gets(services: dict[str, Any]) -> list[Any]:
    return [
        r
        for name in ("s3", "cos", "oss")
        for r in services[name].requests
        if r.operation == "GetObject" and "_multicloud/" not in r.key
    ]


def table_files() -> dict[str, bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(500)), "v": [f"x{i}" for i in range(500)]}), buf, row_group_size=100)
    return {
        "t/quoted.csv": b'id,text\n1,"line one\nline two"\n2,"a ""quote"""\n3,plain\n',
        "t/events.jsonl": b'{"id": 1}\n{"id": 2}\n\n{"id": 3}\n{"id": 4}\n',
        "t/table.parquet": buf.getvalue(),
        "t/zipped.csv.gz": gzip.compress(b"id,v\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(1000))),
    }


def test_quick_over_many_objects_reads_no_object_data(clean_services: dict[str, Any]) -> None:
    files = {f"part={i % 10}/obj-{i:05d}.json": b'{"i": %d}\n' % i for i in range(N_OBJECTS)}
    source = fresh(clean_services, "s3", files)
    dest = fresh(clean_services, "cos")
    replicate(source, [dest], opts(workers=16))
    for svc in ("s3", "cos"):
        clean_services[svc].clear_log()
    report = compare_replicas(source, [dest], workers=16)
    assert report.ok, report.table()
    assert report.replicas[0].passed == N_OBJECTS, report.duration_s
    assert data_gets(clean_services) == [], "quick validation must not read object data"
    heads = [r for n in ("s3", "cos") for r in clean_services[n].requests if r.method == "HEAD"]
    assert heads == [], "listings and the manifest settle every object: no HEAD per object"


def test_each_tampering_is_caught_and_named(clean_services: dict[str, Any]) -> None:
    files = {**table_files(), "keep.bin": os.urandom(2000), "gone.bin": b"1234", "cut.bin": b"abcdef" * 100}
    source = fresh(clean_services, "s3", files)
    dest = fresh(clean_services, "cos")
    replicate(source, [dest], opts())
    cos = clean_services["cos"]
    dest.store.delete(dest.key("gone.bin"))
    dest.store.write(dest.key("stray.bin"), [b"not in the source"])
    dest.store.write(dest.key("cut.bin"), [files["cut.bin"][:-10]])
    dest.store.write(dest.key("t/quoted.csv"), [b'id,text\n1,"line one\nline two"\n3,plain\n'])
    cos.corrupt(dest.store.bucket, dest.key("keep.bin"), offset=100)  # same size, ETag and CRC64 unchanged

    quick = compare_replicas(source, [dest], count_rows=True)
    assert {(d.key, d.kind) for d in quick.replicas[0].differences} == {
        ("gone.bin", "missing"),
        ("stray.bin", "extra"),
        ("cut.bin", "size"),
        ("t/quoted.csv", "size"),
        ("t/quoted.csv", "rows"),
    }
    rows = [d for d in quick.replicas[0].differences if d.kind == "rows"]
    assert [(d.key, d.source, d.replica) for d in rows] == [("t/quoted.csv", 3, 2)]
    assert "keep.bin" not in kinds(quick), "a flipped byte under unchanged checksums is invisible without reading"

    full = compare_replicas(source, [dest], level="full")
    flipped = [d for d in full.replicas[0].differences if d.key == "keep.bin"]
    assert [d.kind for d in flipped] == ["checksum"] and flipped[0].source != flipped[0].replica
    assert "keep.bin: checksum" in full.table() and "keep.bin" in full.to_html()


def test_replica_whose_recorded_checksum_lies_is_caught_at_full_level(clean_services: dict[str, Any]) -> None:
    data = os.urandom(6 * MiB)  # multipart: no plain-MD5 ETag to compare
    source = fresh(clean_services, "cos", {"big.bin": data})
    s3_dest, oss_dest = fresh(clean_services, "s3"), fresh(clean_services, "oss")
    replicate(source, [s3_dest, oss_dest], opts())
    for dest in (s3_dest, oss_dest):
        meta = dict(dest.store.head(dest.key("big.bin")).metadata)
        liar = bytearray(data)
        liar[12345] ^= 0xFF
        dest.store.write(dest.key("big.bin"), [bytes(liar)], metadata=meta)  # our metadata, other bytes
    quick = compare_replicas(source, [s3_dest, oss_dest])
    # OSS keeps its own CRC64 of the new bytes, which contradicts the copied metadata: caught without reading.
    assert kinds(quick, 1) == {"big.bin": "checksum"}
    # S3 keeps no checksum of its own that we can compare: the metadata is believed until the bytes are read. The
    # manifest no longer counts (the replica's ETag changed since the copy): the source's own CRC64 (a HEAD) does.
    assert kinds(quick, 0) == {} and list(quick.replicas[0].checksum_methods) == ["crc64 (native/metadata)"]
    full = compare_replicas(source, [s3_dest, oss_dest], level="full")
    assert kinds(full, 0) == {"big.bin": "checksum"} and kinds(full, 1) == {"big.bin": "checksum"}


def test_cos_and_oss_compare_by_native_crc64_in_quick_mode(clean_services: dict[str, Any]) -> None:
    same, other = os.urandom(7 * MiB), os.urandom(7 * MiB)
    cos = fresh(clean_services, "cos", {"a.bin": same, "b.bin": same}, transfer=SMALL)
    oss = fresh(clean_services, "oss", {"a.bin": same, "b.bin": other},
                transfer=TransferConfig(multipart_threshold=6 * MiB, part_size=6 * MiB))  # fmt: skip
    clean_services["cos"].clear_log()
    clean_services["oss"].clear_log()
    report = compare_replicas(cos, [oss])
    rep = report.replicas[0]
    assert rep.checksum_methods == {"crc64 (native)": 2} and (rep.passed, rep.failed) == (1, 1)
    assert kinds(report) == {"b.bin": "checksum"}
    assert data_gets(clean_services) == []


def test_object_without_comparable_checksum_is_unverified(clean_services: dict[str, Any]) -> None:
    data = os.urandom(6 * MiB)
    source = fresh(clean_services, "s3", {"x.bin": data, "small.txt": b"hello"})
    replica = fresh(clean_services, "s3", {"x.bin": data, "small.txt": b"hello"},
                    transfer=TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB + 1))  # fmt: skip
    report = compare_replicas(source, [replica])
    assert kinds(report) == {"x.bin": "unverified"} and report.replicas[0].passed == 1
    assert not report.ok and "unverified" in report.table()
    assert compare_replicas(source, [replica], allow_unverified=True).ok


def test_row_counts_side_by_side(clean_services: dict[str, Any]) -> None:
    source = fresh(clean_services, "s3", table_files())
    dest = fresh(clean_services, "oss")
    replicate(source, [dest], opts())
    report = compare_replicas(source, [dest], count_rows=True)
    rep = report.replicas[0]
    assert report.ok, report.table()
    assert {k: (v["source_rows"], v["replica_rows"]) for k, v in rep.files.items()} == {
        "t/events.jsonl": (4, 4),
        "t/quoted.csv": (3, 3),
        "t/table.parquet": (500, 500),
        "t/zipped.csv.gz": (1000, 1000),
    }
    assert report.rows == rep.rows == rep.source_rows == 1507


def test_expectations_default_suite(clean_services: dict[str, Any]) -> None:
    files = {k: v for k, v in table_files().items() if k.endswith((".csv", ".parquet"))}
    source = fresh(clean_services, "s3", files)
    dest = fresh(clean_services, "cos")
    replicate(source, [dest], opts())
    user = {"*.parquet": [{"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}]}
    good = compare_replicas(source, [dest], expectations=user, sample=100)
    assert good.ok, good.table()
    assert [e["success"] for e in good.replicas[0].expectations] == [True, True]
    assert {e["key"]: e["mode"] for e in good.replicas[0].expectations}["t/table.parquet"] == "sample of 100 rows"
    dest.store.write(dest.key("t/quoted.csv"), [b'id,body\n1,"line one\nline two"\n2,"a ""quote"""\n3,plain\n'])
    bad = compare_replicas(source, [dest], expectations={}, allow_unverified=True)
    failed = [d for d in bad.replicas[0].differences if d.kind == "expectation"]
    assert failed and {d.key for d in failed} == {"t/quoted.csv"}
    assert bad.replicas[0].expectations_failed == 1


def test_cli_exit_codes(clean_services: dict[str, Any], airflow_connections: dict[str, str],
                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    source = fresh(clean_services, "s3", {"a.csv": b"x\n1\n", "b.csv": b"x\n2\n"})
    dest = fresh(clean_services, "oss")
    replicate(source, [dest], opts())
    src_uri, dst_uri = f"s3://{source.store.bucket}/ds/", f"oss://{dest.store.bucket}/ds/"
    assert main(["verify", src_uri, dst_uri, "--rows"]) == 0
    dest.store.delete(dest.key("b.csv"))
    assert main(["verify", src_uri, dst_uri, "--json"]) == 1
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert report["replicas"][0]["differences"][0]["key"] == "b.csv"
    for svc in ("s3", "oss"):
        assert clean_services[svc].connection("x")["password"] not in out
    assert main(["verify", src_uri, dst_uri, "--dst-conn", "no_such_conn"]) == 2
    assert main(["verify", src_uri, "ftp://x/y/"]) == 2


# ---- the operator --------------------------------------------------------------------------------------
def test_operator_execute(clean_services: dict[str, Any], airflow_connections: dict[str, str]) -> None:
    from airflow_multicloud.operators.validate import ReplicaMismatchError, ValidateReplicaOperator

    source = fresh(clean_services, "s3", {"a.csv": b"x\n1\n2\n", "b.bin": b"zz"})
    dest = fresh(clean_services, "cos")
    replicate(source, [dest], opts())
    uris = f"s3://{source.store.bucket}/ds/", f"cos://{dest.store.bucket}/ds/"
    op = ValidateReplicaOperator(task_id="v", source=uris[0], replicas=[uris[1]], count_rows=True)
    events: dict[Any, Any] = {}

    class Event:
        extra: dict[str, Any] = {}

    context: Any = {"dag": type("D", (), {"dag_id": "d"})(), "run_id": "r1", "outlet_events": events}
    events[op.outlets[0]] = Event()
    result = op.execute(context)
    assert result["ok"] is True
    extra = events[op.outlets[0]].extra
    assert (extra["objects"], extra["rows"], extra["checksum_status"]) == (2, 2, "passed")
    assert extra["report"].startswith(uris[1] + "_multicloud/reports/")
    reports = [i.key for i in dest.store.list(dest.prefix + "_multicloud/reports/")]
    assert len(reports) == 2 and {k.rsplit(".", 1)[1] for k in reports} == {"json", "html"}
    lineage = op.get_openlineage_facets_on_complete(None)
    replica_in = lineage.inputs[1]
    assert replica_in.inputFacets["dataQualityMetrics"].rowCount == 2
    assert all(a.success for a in replica_in.facets["dataQualityAssertions"].assertions)

    dest.store.write(dest.key("a.csv"), [b"x\n1\n9\n"])
    with pytest.raises(ReplicaMismatchError, match=r"a\.csv: checksum \(source: md5 \w+"):
        op.execute(context)


DAG_FILE = textwrap.dedent(
    """
    import os, datetime
    from airflow.sdk import DAG
    from airflow_multicloud.operators.validate import ValidateReplicaOperator

    with DAG("validate_replicas", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
        ValidateReplicaOperator(task_id="good", source=os.environ["T_SRC"], replicas=[os.environ["T_GOOD"]],
                                count_rows=True, expectations={})
        ValidateReplicaOperator(task_id="bad", source=os.environ["T_SRC"], replicas=[os.environ["T_BAD"]])

    if __name__ == "__main__":
        import json
        run = dag.test()
        print("STATES=" + json.dumps({ti.task_id: str(ti.state) for ti in run.get_task_instances()}))
    """
)


def test_operator_in_a_dag(clean_services: dict[str, Any], airflow_connections: dict[str, str], tmp_path: Path) -> None:
    files = {"a.csv": b"x,y\n1,2\n3,4\n", "b.jsonl": b'{"k": 1}\n'}
    source = fresh(clean_services, "s3", files)
    good, bad = fresh(clean_services, "cos"), fresh(clean_services, "oss")
    replicate(source, [good, bad], opts())
    bad.store.delete(bad.key("b.jsonl"))
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "validate_dag.py").write_text(DAG_FILE)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "T_SRC": f"s3://{source.store.bucket}/ds/",
        "T_GOOD": f"cos://{good.store.bucket}/ds/",
        "T_BAD": f"oss://{bad.store.bucket}/ds/",
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    done = subprocess.run(
        [sys.executable, str(dags / "validate_dag.py")], env=env, capture_output=True, text=True, timeout=300
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("STATES=")), None)
    assert line, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(line[len("STATES=") :]) == {"good": "success", "bad": "failed"}
    log = done.stdout + done.stderr
    assert "b.jsonl: missing" in log
    assert clean_services["oss"].connection("x")["password"] not in log
    assert [i.key for i in good.store.list(good.prefix + "_multicloud/reports/")]
