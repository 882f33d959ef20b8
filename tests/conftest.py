from __future__ import annotations

import os
import tempfile

import pytest

# Airflow reads its configuration at import: point it at a throw-away home before anything imports it.
# Under pytest-xdist every worker imports this file itself, so each worker gets a home (and a unit-test DB) of its own.
_home = tempfile.mkdtemp(prefix="airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _home)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

pytest_plugins = ["multicloud_testbed.fixtures"]

#: the xdist group (``make test`` runs ``--dist loadgroup``) of every test that starts a real Airflow
AIRFLOW_STACK_GROUP = "airflow-stack"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which turns the group marks into scheduling scopes
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that start a real Airflow one after another, on one worker.

    Each brings up an api-server, a scheduler, a dag-processor (and a triggerer, Celery workers or Chromium): two
    of them at once on a 2-core machine starve each other past the waits they make on Airflow, while either fits
    beside the other worker's in-process tests. The group is also the largest scope, so xdist hands it out first
    and its minutes overlap the rest of the suite instead of trailing it.
    """
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.xdist_group(AIRFLOW_STACK_GROUP))
