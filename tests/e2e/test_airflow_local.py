"""``multicloud airflow-local`` as a user runs it: it comes up healthy on 127.0.0.1 only, with the sample DAG
unpaused and the admin password it printed, and one Ctrl-C (SIGINT) stops everything it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from multicloud_testbed.airflow_stack import free_port

pytestmark = pytest.mark.e2e


def _get(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as resp:
        return json.load(resp)


def _post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def _healthy(url: str) -> bool:
    try:
        h = _get(f"{url}/api/v2/monitor/health")
    except OSError:
        return False
    return all((h.get(k) or {}).get("status") == "healthy" for k in ("metadatabase", "scheduler", "triggerer"))


def _airflow_processes(home: Path) -> list[psutil.Process]:
    """Every live process whose environment points at this home: what a leftover would look like."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.environ().get("AIRFLOW_HOME") == str(home):
                found.append(p)
        except psutil.Error:
            continue
    return found


@pytest.mark.timeout(300)
def test_airflow_local_serves_then_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    home, port = tmp_path / "airflow-home", free_port()
    out = tmp_path / "airflow-local.out"
    multicloud = str(Path(sys.executable).with_name("multicloud"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [multicloud, "airflow-local", "--port", str(port), "--home", str(home), "--days", "2"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not ("Stop: Ctrl-C" in out.read_text(errors="replace") and _healthy(url)):
            assert proc.poll() is None, f"airflow-local exited ({proc.returncode}):\n{out.read_text()}"
            assert time.monotonic() < deadline, f"airflow-local not healthy in 180 s:\n{out.read_text()}"
            time.sleep(1)
        banner = out.read_text()
        assert f"Airflow UI:  {url}" in banner
        password = re.search(r"password: (\S+)", banner)
        assert password, banner
        generated = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        assert password.group(1) == generated["admin"]

        token = _post(f"{url}/auth/token", {"username": "admin", "password": password.group(1)})["access_token"]
        assert _get(f"{url}/api/v2/dags/nightly_replication", token)["is_paused"] is False
        assert _get(f"{url}/api/v2/dags/restore_drill", token)["is_paused"] is True  # only the demo DAG runs

        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4, children  # api-server, scheduler, dag-processor, triggerer and their workers
        listening = [
            c.laddr
            for p in [psutil.Process(proc.pid), *children]
            for c in _connections(p)
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening and all(a.ip == "127.0.0.1" for a in listening), listening

        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends (the components have own groups)
        assert proc.wait(timeout=60) == 0, out.read_text()
        assert "stopped: no Airflow process left running" in out.read_text()
        left = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert not left, left
        assert not _airflow_processes(home)
    finally:
        if proc.poll() is None:  # the test failed before the Ctrl-C: do not leave the stack running
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        for p in _airflow_processes(home):
            p.kill()


def _connections(p: psutil.Process) -> list[Any]:
    try:
        return list(p.net_connections(kind="inet"))
    except psutil.Error:
        return []
