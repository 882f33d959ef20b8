"""The ``multicloud`` command and the provider registration, exercised the way users and Airflow meet them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_multicloud.cli.main import main as cli

BIN = Path(sys.executable).parent


def test_airflow_loads_the_provider_with_its_connection_forms_and_asset_schemes() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    pm = ProvidersManager()
    assert "airflow-multicloud" in pm.providers
    fields = pm.connection_form_widgets if hasattr(pm, "connection_form_widgets") else {}
    assert fields is not None
    # hooks and asset URI handlers moved to the task SDK's runtime manager in Airflow 3.3 (the core one warns)
    runtime = ProvidersManagerTaskRuntime()
    hooks = runtime.hooks
    assert hooks["cos"] is not None and hooks["cos"].hook_class_name.endswith("CosHook")
    assert hooks["multicloud_oss"] is not None
    runtime.initialize_providers_asset_uri_resources()
    assert {"cos", "cosn", "oss"} <= set(runtime.asset_uri_handlers)


def test_airflow_cli_lists_the_provider() -> None:
    out = subprocess.run([str(BIN / "airflow"), "providers", "list"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "airflow-multicloud" in out.stdout


def test_asset_uris_are_sanitized_with_a_clear_error() -> None:
    from airflow.sdk import Asset

    assert Asset("cos://backup-1250000000/x/").uri.startswith("cos://backup-1250000000/x")
    with pytest.raises(ValueError, match="bucket"):
        Asset("oss:///no-bucket")


def _data(services: dict[str, Any]) -> tuple[str, str]:
    s3, cos = services["s3"], services["cos"]
    src, dst = s3.create_bucket(), cos.create_bucket()
    store = s3.store(src)
    for i in range(3):
        store.write(f"in/{i}.csv", [b"a,b\n1,2\n"])
    return f"s3://{src}/in/", f"cos://{dst}/out/"


def test_replicate_exit_codes(
    clean_services: dict[str, Any], airflow_connections: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = _data(clean_services)
    assert cli(["replicate", src, dst, "--json", "--progress-interval", "0"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["copied"], summary["failed"]) == (3, 0)

    assert cli(["replicate", src, dst, "--mode", "sync"]) == 2
    assert "argument --mode: invalid choice: 'sync'" in capsys.readouterr().err
    assert cli(["replicate", src, src + "inside/"]) == 2
    assert cli(["replicate", "gs://bucket/x/", dst]) == 2
    assert cli(["replicate", src, dst, "--src-conn", "no_such_conn"]) == 2
    assert "AIRFLOW_CONN_NO_SUCH_CONN" in capsys.readouterr().err

    clean_services["s3"].faults.add("flip", operation="GetObject", key="*1.csv")
    other = dst.replace("/out/", "/out2/")
    assert cli(["replicate", src, other, "--retries", "1", "--progress-interval", "0"]) == 1
    captured = capsys.readouterr()
    assert "1 object copies failed" in captured.err and "out2/1.csv" in captured.err
    assert "2 copied" in captured.out


def test_serve_local_prints_working_connections_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [str(BIN / "multicloud"), "serve-local", "--data-dir", str(tmp_path), "--bucket", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ},
    )
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        exports = dict(
            line.removeprefix("export ").strip().split("=", 1) for line in lines if line.startswith("export ")
        )
        assert set(exports) == {"AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW_CONN_COS_DEFAULT", "AIRFLOW_CONN_OSS_DEFAULT"}
        env = {**os.environ, **{k: v.strip("'") for k, v in exports.items()}}
        probe = (
            "from airflow_multicloud.hooks.factory import open_location as o\n"
            "for u in ['s3://demo/', 'cos://demo-1250000000/', 'oss://demo/']:\n"
            "    loc = o(u); loc.store.write('hello.txt', [b'hi']); assert loc.store.head('hello.txt').size == 2\n"
            "print('ok')\n"
        )
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
        assert out.stdout.strip().endswith("ok"), out.stderr[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_opening_a_dataset_reports_hook_level_lineage(
    clean_services: dict[str, Any], airflow_connections: dict[str, str]
) -> None:
    src, dst = _data(clean_services)
    script = (
        "import json, sys\n"
        "from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector\n"
        "from airflow_multicloud.hooks.factory import open_location\n"
        "open_location(sys.argv[1], lineage='input'); open_location(sys.argv[2], lineage='output')\n"
        "c = get_hook_lineage_collector().collected_assets\n"
        "print(json.dumps({'in': [a.asset.uri for a in c.inputs], 'out': [a.asset.uri for a in c.outputs]}))\n"
    )
    # OpenLineage registers Airflow's hook-lineage reader only when a transport is configured
    env = {**os.environ, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "console"})}
    out = subprocess.run([sys.executable, "-c", script, src, dst], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert [u.rstrip("/") for u in seen["in"]] == [src.rstrip("/")]
    assert [u.rstrip("/") for u in seen["out"]] == [dst.rstrip("/")]
