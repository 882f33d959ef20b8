"""pytest fixtures: the three local clouds (started once per session) and fresh buckets with Airflow connections.

Use from a conftest: ``pytest_plugins = ["multicloud_testbed.fixtures"]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_multicloud.schemes import SCHEMES
from multicloud_testbed.dag_runner import run_dag
from multicloud_testbed.services import LocalService

__all__ = ["run_dag"]

SERVICE_NAMES = ("s3", "cos", "oss", "file")


def start_service(name: str) -> Any:
    if name == "s3":
        from multicloud_testbed.s3_server import S3Service

        return S3Service().start()
    if name == "cos":
        from multicloud_testbed.cos_server import CosService

        return CosService().start()
    if name == "oss":
        from multicloud_testbed.oss_server import OssService

        return OssService().start()
    from multicloud_testbed.local_files import LocalFilesService

    return LocalFilesService().start()


@pytest.fixture(scope="session")
def services() -> Iterator[dict[str, LocalService]]:
    """Every local service, started lazily on first use and stopped at the end of the session."""
    started: dict[str, Any] = {}

    class Lazy(dict[str, Any]):
        def __missing__(self, name: str) -> Any:
            started[name] = start_service(name)
            self[name] = started[name]
            return started[name]

    yield Lazy()
    for svc in started.values():
        svc.stop()


@pytest.fixture
def clean_services(services: dict[str, LocalService]) -> Iterator[dict[str, LocalService]]:
    """The services with empty request logs and no fault rules, reset again after the test."""
    for svc in list(services.values()):
        svc.clear_log()
        svc.faults.clear()
    yield services
    for svc in list(services.values()):
        svc.faults.clear()


@pytest.fixture
def s3_service(clean_services: dict[str, LocalService]) -> LocalService:
    return clean_services["s3"]


@pytest.fixture
def cos_service(clean_services: dict[str, LocalService]) -> LocalService:
    return clean_services["cos"]


@pytest.fixture
def oss_service(clean_services: dict[str, LocalService]) -> LocalService:
    return clean_services["oss"]


@pytest.fixture
def airflow_connections(monkeypatch: pytest.MonkeyPatch, clean_services: dict[str, LocalService]) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables for the local services: aws_default, cos_default, oss_default."""
    ids = {name: SCHEMES[name].default_conn_id for name in ("s3", "cos", "oss")}
    for name, conn_id in ids.items():
        conn = clean_services[name].connection(conn_id)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return ids


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated SQLite metadata DB in a fresh AIRFLOW_HOME whose dags folder is the repo's ``dags/``.

    Returns the environment for subprocesses (``run_dag``, ``airflow`` commands).
    """
    from multicloud_testbed.dag_runner import airflow_env, migrate

    env = airflow_env(tmp_path_factory.mktemp("airflow-home"))
    migrate(env)
    return env
