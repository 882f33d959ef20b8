"""No secret anywhere: replicate, verify and the nightly DAG run with distinctive secret keys on all three clouds
(and a run with a wrong one), and every log line, summary, XCom, manifest, report and asset extra is searched for
them, plain and encoded.

The local servers accept the distinctive credentials alongside their own (their credential tables are plain
dicts); nothing is mocked.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from multicloud_testbed.fixtures import run_dag

DAGS = Path(__file__).resolve().parents[2] / "dags"
# '/', '+' and '=' make the URL-encoded and base64 forms differ from the plain one, as in real AWS secrets
SECRETS = {
    "s3": "SeKrEt-ZX81-s3/Aq+Zq9=Wv",
    "cos": "SeKrEt-ZX81-cos/Bq+Yq8=Xw",
    "oss": "SeKrEt-ZX81-oss/Cq+Xq7=Yx",
}
WRONG = "SeKrEt-ZX81-wrong/Dq+Wq6=Zy"
KEY_IDS = {name: f"AKIDZX81{name.upper()}TEST" for name in SECRETS}
CONN_IDS = {"s3": "aws_default", "cos": "cos_default", "oss": "oss_default"}
CSV = b"id,name\n1,alpha\n2,beta\n"


def forms(secret: str) -> set[str]:
    """The ways a secret could leak: as it is, URL-encoded, base64 (plain and URL-safe)."""
    raw = secret.encode()
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
    }


NEEDLES = set().union(*(forms(s) for s in [*SECRETS.values(), WRONG]))


def leaks(where: str, text: str) -> list[str]:
    return [f"{where}: {needle!r}" for needle in NEEDLES if needle in text]


def _credentials(svc: Any) -> dict[str, str]:
    """The server's table of access key id -> secret (S3: the signature-checking middleware's)."""
    return svc.middleware.credentials if svc.name == "s3" else svc.server.credentials  # type: ignore[no-any-return]


@pytest.fixture
def secret_clouds(clean_services: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The three local clouds accepting the distinctive credentials, and connections that use them."""
    added = []
    for name, secret in SECRETS.items():
        table = _credentials(clean_services[name])
        table[KEY_IDS[name]] = secret
        added.append((table, KEY_IDS[name]))
    env = {}
    for name, conn_id in CONN_IDS.items():
        conn = clean_services[name].connection(conn_id)
        conn.update(login=KEY_IDS[name], password=SECRETS[name])
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    yield {"services": clean_services, "env": env}
    for table, key_id in added:
        table.pop(key_id, None)


def _objects(store: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every object under ``prefix`` with its text: manifests, reports and data alike."""
    for info in store.list(prefix):
        yield store.uri(info.key), b"".join(store.read(info.key)).decode("utf-8", "replace")


def _cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "airflow_multicloud.cli.main", "-v", *argv]
    return subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def test_no_secret_in_cli_output_manifests_or_reports(secret_clouds: dict[str, Any], tmp_path: Path) -> None:
    services, env = secret_clouds["services"], secret_clouds["env"]
    s3, cos, oss = services["s3"], services["cos"], services["oss"]
    src, cb, ob = s3.create_bucket(), cos.create_bucket(), oss.create_bucket()
    for i in range(3):
        s3.store(src).write(f"in/{i}.csv", [CSV])
    source, dests = f"s3://{src}/in/", [f"cos://{cb}/out/", f"oss://{ob}/out/"]
    found: list[str] = []
    runs = {
        "replicate": _cli(env, "replicate", source, *dests, "--json", "--progress-interval", "0"),
        "replicate again": _cli(env, "replicate", source, *dests, "--progress-interval", "0"),
        "verify": _cli(env, "verify", source, *dests, "--level", "full", "--rows", "--html", str(tmp_path / "r.html")),
        "verify json": _cli(env, "verify", source, *dests, "--json"),
    }
    wrong = {**env, "AIRFLOW_CONN_COS_DEFAULT": env["AIRFLOW_CONN_COS_DEFAULT"].replace(SECRETS["cos"], WRONG)}
    runs["replicate with a wrong secret"] = _cli(wrong, "replicate", source, f"cos://{cb}/again/", "--json")
    runs["verify with a wrong secret"] = _cli(wrong, "verify", source, dests[0], "--json")
    assert [r.returncode for r in runs.values()] == [0, 0, 0, 0, 2, 2], {k: r.stderr[-2000:] for k, r in runs.items()}
    assert json.loads(runs["replicate"].stdout)["copied"] == 6
    assert "check the SecretId and SecretKey" in runs["replicate with a wrong secret"].stderr
    for name, run in runs.items():
        found += leaks(f"{name} stdout", run.stdout) + leaks(f"{name} stderr", run.stderr)
    found += leaks("verify --html", (tmp_path / "r.html").read_text())
    written = [*_objects(cos.store(cb)), *_objects(oss.store(ob))]
    assert any("_multicloud/manifests/" in uri for uri, _ in written)
    for uri, text in written:
        found += leaks(uri, text)
    assert found == []


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {self.format(record)}")


def test_no_secret_in_the_engines_debug_logs(secret_clouds: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process, every logger at DEBUG (the SDKs' own included), a clean run and one with failures."""
    from airflow_multicloud.hooks.factory import open_location
    from airflow_multicloud.replication.engine import ReplicationError, ReplicationOptions, replicate

    services = secret_clouds["services"]
    for key, value in secret_clouds["env"].items():
        monkeypatch.setenv(key, value)
    s3, oss = services["s3"], services["oss"]
    src, ob = s3.create_bucket(), oss.create_bucket()
    for i in range(2):
        s3.store(src).write(f"in/{i}.csv", [CSV])
    # Airflow configures its logging when a connection is first looked up (replacing root handlers, pytest's
    # caplog among them): collect with a handler attached after that
    source = open_location(f"s3://{src}/in/")
    collect = _Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    # every SDK logger at DEBUG and propagating; earlier tests' logging configurations may have disabled or raised
    # their child loggers: every line counts. Saved and restored by hand, through setLevel: loggers cache their
    # isEnabledFor() answers and only setLevel clears those caches, so a restored .level alone would leave the
    # SDKs logging at DEBUG for every later test in this process (which slowed the suite to a crawl once)
    loggers = [logging.getLogger(name) for name in ("", "botocore", "boto3", "urllib3", "oss2", "airflow_multicloud")]
    loggers += [
        child
        for name, child in list(logging.root.manager.loggerDict.items())
        if isinstance(child, logging.Logger) and name.split(".")[0] in ("botocore", "boto3", "urllib3", "oss2")
    ]
    saved = [(lg, lg.level, lg.propagate, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.disabled, lg.propagate = False, True
        lg.setLevel(
            logging.DEBUG
            if lg.name in ("root", "botocore", "boto3", "urllib3", "oss2", "airflow_multicloud")
            else logging.NOTSET
        )
    try:
        options = ReplicationOptions(progress_interval=0)
        summary = replicate(source, [open_location(f"oss://{ob}/out/")], options)
        oss.faults.add("status", status=500, code="InternalError", operation="PutObject")
        with pytest.raises(ReplicationError) as err:
            replicate(source, [open_location(f"oss://{ob}/failing/")], options)
    finally:
        root.removeHandler(collect)
        for lg, level, propagate, disabled in saved:
            lg.propagate, lg.disabled = propagate, disabled
            lg.setLevel(level)
    assert {"botocore", "oss2"} <= {line.split(".")[0] for line in collect.lines}, "the SDKs' debug lines are in"
    texts = [*collect.lines, str(err.value), json.dumps(summary.to_json())]
    assert [leak for i, t in enumerate(texts) for leak in leaks(f"log {i}", t)] == []


def test_no_secret_in_a_dag_run(secret_clouds: dict[str, Any], airflow_home: dict[str, str]) -> None:
    services, env = secret_clouds["services"], secret_clouds["env"]
    s3, cos, oss = services["s3"], services["cos"], services["oss"]
    raw, cb, ob = s3.create_bucket(), cos.create_bucket(), oss.create_bucket()
    base = "flights/date=2013-01-02/"
    s3.store(raw).write(base + "part-0.csv", [CSV])
    s3.store(raw).write(base + "_SUCCESS", [b""])
    extra = {
        **env,
        "MULTICLOUD_NIGHTLY_SOURCE": f"s3://{raw}/flights/",
        "MULTICLOUD_NIGHTLY_DESTINATIONS": f"cos://{cb}/flights/,oss://{ob}/flights/",
    }
    out = run_dag(
        airflow_home,
        str(DAGS / "nightly_replication.py"),
        "nightly_replication",
        logical_date="2013-01-03T00:00:00+00:00",
        extra_env=extra,
    )
    assert out["state"] == "success", out["log"][-4000:]
    assert out["asset_events"] and out["xcom"]
    found = leaks("task log", out["log"]) + leaks("xcom", json.dumps(out["xcom"], default=str))
    found += leaks("asset events", json.dumps(out["asset_events"], default=str))
    for path in Path(airflow_home["AIRFLOW_HOME"]).rglob("*.log"):
        found += leaks(str(path), path.read_text(errors="replace"))
    written = [*_objects(cos.store(cb)), *_objects(oss.store(ob))]
    assert any("_multicloud/reports/" in uri for uri, _ in written), "the validation reports are searched too"
    for uri, text in written:
        found += leaks(uri, text)
    assert found == []
