"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_multicloud.cli.serve import start_services


@pytest.fixture
def clouds(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Local S3/COS/OSS of one test alone: its buckets can have the names the DAGs and docs use, and the servers'
    request logs hold only that test's requests."""
    services = start_services(data_dir=str(tmp_path / "clouds"))
    try:
        yield services
    finally:
        for svc in services.values():
            svc.stop()
