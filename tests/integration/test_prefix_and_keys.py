"""Prefix semantics from the command line, and each destination's key rules checked at plan time, against the local
S3 (moto), COS and OSS servers through the real SDKs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_multicloud.cli.main import main
from airflow_multicloud.errors import StoreError
from airflow_multicloud.replication.engine import ReplicationError, ReplicationOptions, replicate
from airflow_multicloud.replication.model import Location
from airflow_multicloud.replication.plan import plan_copy
from airflow_multicloud.stores.local import LocalStore

# three 220-byte folder names and a file name: 900 bytes, more than COS takes, less than OSS and S3 take
LONG_REL = "/".join(["d" * 220] * 3 + ["f" * 217 + ".csv"])


def objects(loc_store: Any, prefix: str) -> list[str]:
    return sorted(i.key for i in loc_store.list(prefix) if "_multicloud/" not in i.key)


def test_a_source_without_trailing_slash_is_a_folder_and_reruns_do_not_grow(
    airflow_connections: dict[str, str], oss_service: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = oss_service.create_bucket()
    store = oss_service.store(bucket)
    for i in range(4):
        for j in range(5):
            store.write(f"data/d{i}/f{j}.txt", [f"{i}-{j}".encode()])
    for run in range(3):
        assert main(["replicate", "--json", f"oss://{bucket}/data", f"oss://{bucket}/data2/"]) == 0
        summary = json.loads(capsys.readouterr().out)
        copied = objects(store, "data2")
        assert len(copied) == 20, f"run {run + 1}: {len(copied)} objects under data2"
        assert copied[0] == "data2/d0/f0.txt" and all("//" not in k for k in copied)
        assert (summary["objects"], summary["copied"]) == (20, 20 if run == 0 else 0)
        assert summary["source"] == f"oss://{bucket}/data/"


@pytest.mark.parametrize(
    ("name", "ok", "bad", "why"),
    [
        ("cos", "k" * 850, "k" * 851, "at most 850 bytes"),
        ("cos", "a/b", "/a", "must not start with '/'"),
        ("cos", "a/b", "\\a", "must not start with '\\\\'"),
        ("cos", "a b", "a\x1bb", "U+001B"),
        ("cos", "\u6570" * 283, "\u6570" * 284, "852 bytes of UTF-8"),  # bytes, not characters
        ("oss", "k" * 1023, "k" * 1024, "at most 1023 bytes"),
        ("oss", "a/b", "\\a", "must not start"),
        ("s3", "k" * 1024, "k" * 1025, "at most 1024 bytes"),
    ],
)
def test_each_store_knows_its_key_rules(clean_services: Any, name: str, ok: str, bad: str, why: str) -> None:
    store = clean_services[name].store(clean_services[name].create_bucket())
    assert store.key_problem(ok) is None
    problem = store.key_problem(bad)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    ("key", "code"),
    [("k" * 851, "KeyTooLong"), ("\\lead", "InvalidArgument"), ("a\x18b", "InvalidArgument")],
)
def test_local_cos_refuses_what_cos_refuses(cos_service: Any, key: str, code: str) -> None:
    store = cos_service.store(cos_service.create_bucket())
    with pytest.raises(StoreError, match=code):
        store.put_object(key, b"x", metadata={})
    assert [r.status for r in cos_service.requests if r.operation == "PutObject"] == [400]
    store.put_object("k" * 850, b"x", metadata={})  # the longest key COS takes


def test_local_oss_refuses_what_oss_refuses(oss_service: Any) -> None:
    store = oss_service.store(oss_service.create_bucket())
    for key in ("k" * 1024, "\\lead"):
        with pytest.raises(StoreError, match="InvalidObjectName"):
            store.put_object(key, b"x", metadata={})
    store.put_object("k" * 1023, b"x", metadata={})


def test_a_key_cos_cannot_hold_fails_by_name_at_plan_time_without_a_request(
    tmp_path: Path, clean_services: Any
) -> None:
    src = tmp_path / "src"
    (src / LONG_REL).parent.mkdir(parents=True)
    (src / LONG_REL).write_bytes(b"long\n")
    (src / "short.csv").write_bytes(b"short\n")
    source = Location(LocalStore(str(src)), "")
    cos, oss = clean_services["cos"], clean_services["oss"]
    dests = [Location(cos.store(cos.create_bucket()), "ds/"), Location(oss.store(oss.create_bucket()), "ds/")]
    cos.clear_log()

    plan = plan_copy(source, dests)
    actions = {e.obj.rel: {d: str(a) for d, a in e.actions.items()} for e in plan.entries}
    assert actions == {LONG_REL: {0: "invalid-key", 1: "copy"}, "short.csv": {0: "copy", 1: "copy"}}

    dry = replicate(source, dests, ReplicationOptions(dry_run=True, progress_interval=0))
    assert dry.failed == 1 and len(dry.invalid_keys) == 1
    assert dry.invalid_keys[0].startswith(dests[0].store.uri("ds/" + LONG_REL)) and "850" in dry.invalid_keys[0]

    with pytest.raises(ReplicationError) as err:
        replicate(source, dests, ReplicationOptions(mode="mirror", max_delete=5, progress_interval=0))  # type: ignore[arg-type]
    summary = err.value.summary
    assert (summary.copied, summary.failed, summary.deleted) == (3, 1, 0)
    assert LONG_REL in str(err.value) and "at most 850 bytes" in str(err.value)
    assert not [r for r in cos.requests if LONG_REL[:50] in r.key]  # refused by name, never sent
    written = b"".join(dests[1].store.read("ds/" + LONG_REL))
    assert written == b"long\n"  # the destination that can hold it got it
