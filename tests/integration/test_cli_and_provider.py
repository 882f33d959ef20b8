"""The ``multicloud`` command and the provider registration, exercised the way users and Airflow meet them."""

from __future__ import annotations

import json
import os
import re
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


def _cli_run(argv: list[str], env: dict[str, str], probe: bool = True) -> subprocess.CompletedProcess[str]:
    """``multicloud`` in a child process; with ``probe``, the last stdout line says whether Airflow was imported."""
    code = (
        "import sys\n"
        "from airflow_multicloud.cli.main import main\n"
        "rc = main(sys.argv[1:])\n"
        "print('AIRFLOW_IMPORTED', 'airflow' in sys.modules)\n"
        "sys.exit(rc)\n"
    )
    cmd = [sys.executable, "-c", code, *argv] if probe else [str(BIN / "multicloud"), *argv]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _three_clouds(services: dict[str, Any]) -> tuple[str, list[str]]:
    s3, cos, oss = services["s3"], services["cos"], services["oss"]
    src = s3.create_bucket()
    for i in range(3):
        s3.store(src).write(f"in/{i}.csv", [b"a,b\n1,2\n"])
    return f"s3://{src}/in/", [
        f"s3://{s3.create_bucket()}/out/",
        f"cos://{cos.create_bucket()}/out/",
        f"oss://{oss.create_bucket()}/out/",
    ]


def _clean_env(home: Path) -> dict[str, str]:
    # as a user runs it: no secrets backend, no unit-test mode (whose config note Airflow logs during its import)
    drop = ("AIRFLOW__SECRETS__", "AIRFLOW_CONFIG", "AIRFLOW__CORE__UNIT_TEST_MODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, "AIRFLOW_HOME": str(home)}


def test_replicate_and_verify_with_environment_connections_never_import_airflow(
    clean_services: dict[str, Any], airflow_connections: dict[str, str], tmp_path: Path
) -> None:
    src, dests = _three_clouds(clean_services)
    env = _clean_env(tmp_path)
    run = _cli_run(["replicate", src, *dests, "--json"], env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("AIRFLOW_IMPORTED False"), run.stderr[-2000:]
    summary = json.loads(run.stdout[: run.stdout.rindex("AIRFLOW_IMPORTED")])
    assert (summary["copied"], summary["failed"]) == (9, 0)
    # quiet by default when not a terminal: nothing but a progress line every 10 s, should the run last that long
    # (it does on a loaded machine: the line is the CLI's design, not noise)
    noise = [line for line in run.stderr.splitlines() if line.strip() and not re.search(r"\d+/\d+ objects", line)]
    assert noise == [], run.stderr[-3000:]
    check = _cli_run(["verify", src, *dests], env)
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.strip().endswith("AIRFLOW_IMPORTED False")
    assert not (tmp_path / "airflow.cfg").exists(), "Airflow was never started, so it wrote no config"


def test_a_configured_secrets_backend_goes_through_airflow_with_one_log_format(
    clean_services: dict[str, Any], airflow_connections: dict[str, str], tmp_path: Path
) -> None:
    """Airflow's own environment backend named as the custom backend: connections resolve through Airflow. The
    log lines keep the CLI's one format; no masker warning about short extras ("v4", "http"), and the amazon
    provider's "credentials retrieved" line once per store, not twice."""
    src, dests = _three_clouds(clean_services)
    backend = "airflow.secrets.environment_variables.EnvironmentVariablesBackend"
    env = {**_clean_env(tmp_path), "AIRFLOW__SECRETS__BACKEND": backend}
    run = _cli_run(["replicate", src, *dests, "-v"], env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("AIRFLOW_IMPORTED True")
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert "Skipping masking" not in run.stderr
    stamped = [line for line in lines if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ +\S+: ", line)]
    assert any("plan for" in line for line in stamped), run.stderr[-3000:]
    assert not [line for line in lines if re.match(r"\d{4}-\d\d-\d\dT", line) or "[info" in line], run.stderr[-3000:]
    assert run.stderr.count("credentials retrieved") <= 2, "one S3 source and one S3 destination"
