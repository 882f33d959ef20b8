from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest

# Airflow reads its configuration at import: point it at a throw-away home before anything imports it.
# Under pytest-xdist every worker imports this file itself, so each worker gets a home (and a unit-test DB) of its own.
_home = tempfile.mkdtemp(prefix="airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _home)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

pytest_plugins = ["multicloud_testbed.fixtures"]

#: Tests that share one xdist worker under ``make test`` (``-n 2 --dist loadgroup``), by the start of their node id.
#: - Each e2e test starts a real Airflow (api-server, scheduler, dag-processor; a triggerer, Celery workers or
#:   Chromium): two at once on a 2-core machine starve each other past the waits they make on Airflow, where either
#:   fits beside the other worker's in-process tests. Run one after another, they overlap the rest of the suite.
#: - The wheel's two tests share a module fixture that builds the wheel: on two workers it would be built twice.
#: Node ids, not ``xdist_group`` marks: the scheduler sees node ids only, and xdist 3.8 carries the marks in them in a
#: way pytest 9.2 no longer takes (pytest-dev/pytest-xdist#1386), so marks would be silently ignored.
XDIST_GROUPS = {
    "tests/e2e/": "airflow-stack",
    "tests/integration/test_wheel.py::": "wheel",
}


def xdist_group(nodeid: str) -> str | None:
    return next((group for start, group in XDIST_GROUPS.items() if nodeid.startswith(start)), None)


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own choice of scheduler
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class PathGroupScheduling(LoadGroupScheduling):  # type: ignore[misc]
        """``loadgroup`` with the groups above. Scopes go out largest first (xdist's default reordering), so the
        Airflow group starts at once and the suite's longest chain runs beside everything else."""

        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid) or str(super()._split_scope(nodeid))

    return PathGroupScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts a real Airflow (marker ``e2e``) must live in tests/e2e/, or it would join no group."""
    stray = [
        item.nodeid for item in items if item.get_closest_marker("e2e") and not item.nodeid.startswith("tests/e2e/")
    ]
    if stray:
        raise pytest.UsageError(f"tests marked e2e outside tests/e2e/ (move them there, see XDIST_GROUPS): {stray}")
