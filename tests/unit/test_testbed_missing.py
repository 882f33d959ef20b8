"""Without the test bed (a distribution of its own), the commands that need it say what to install and start
nothing. The test bed is hidden from a fresh interpreter by ``sys.modules[name] = None``, which makes every import
of it fail as if it were not installed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = """
import json, sys
sys.modules[{hidden!r}] = None
from airflow_multicloud.cli.main import main
codes = {{}}
for command in ("serve-local", "demo", "airflow-local"):
    try:
        codes[command] = main([command])
    except SystemExit as exc:
        codes[command] = exc.code
print(json.dumps(codes))
"""


@pytest.mark.parametrize("hidden", ["multicloud_testbed", "moto"])
def test_commands_needing_the_testbed_name_what_to_install(hidden: str, tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(hidden=hidden)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # nothing the commands could start may write into the checkout
    )
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert codes == {"serve-local": 2, "demo": 2, "airflow-local": 2}, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "needs the test bed" in line]
    assert [line.split(":")[0] for line in lines] == [
        "multicloud serve-local",
        "multicloud demo",
        "multicloud airflow-local",
    ]
    for line in lines:
        assert f"no module {hidden}" in line and "pip install -e ./testbed" in line
    assert list(tmp_path.iterdir()) == []  # no home, workdir or data folder created
