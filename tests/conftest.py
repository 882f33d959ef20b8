from __future__ import annotations

import os
import tempfile

# Airflow reads its configuration at import: point it at a throw-away home before anything imports it.
_home = tempfile.mkdtemp(prefix="airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _home)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

pytest_plugins = ["multicloud_testbed.fixtures"]
