"""The asset page of a locked replica shows its retention, in the Airflow 3.3 UI in headless Chromium.

Airflow (api-server, dag-processor, scheduler; LocalExecutor; SQLite) runs the sample DAG
``immutable_nightly_replication`` once against the local servers: an S3 source, a COS bucket with object lock
and an OSS bucket with a locked 40-day WORM policy, the two destination kinds the DAG writes. Checks: the run
succeeds; each replica's asset event (REST) carries ``retention`` with the mode and the retain-until date the
run set (30 days, COMPLIANCE) and each cloud holds the replicas that long; then, for each replica, the browser
opens Assets -> the asset, expands the event's extra and finds the same retention there. Screenshots go to the
test's temporary folder, or to ``docs/screenshots/`` with ``MULTICLOUD_UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_ui_backfill import DOC_SCREENSHOTS, AirflowUI, browser  # noqa: F401 (the browser fixture)

from airflow_multicloud.cli.serve import connection_env
from multicloud_testbed import SAMPLE_DAGS
from multicloud_testbed.airflow_stack import AirflowStack
from tests.integration.test_retention_locks import locked_cos, locked_oss

pytestmark = pytest.mark.e2e

DAG_ID = "immutable_nightly_replication"
DAY = "2013-01-02"  # the data interval of the run at 2013-01-03 01:00 (CronDataIntervalTimetable)
DAYS = 30
FILES = {"part-0.csv": b"id,v\n1,2\n", "part-1.csv": b"id,v\n3,4\n"}


class AssetsUI(AirflowUI):
    """Assets -> one asset: its events, each event's extra in a read-only Monaco editor, folded by the UI."""

    EDITOR = "//*[contains(@class, 'monaco-editor')]"

    def open_asset(self, asset_id: int, uri: str) -> None:
        self.d.get(f"{self.url}/assets/{asset_id}")
        self.find(f"//*[contains(normalize-space(), '{uri}')]")

    def event_extra(self, shot: str) -> str:
        """Unfold the newest event's extra (Monaco: Ctrl+K Ctrl+J, "unfold all"), go to its top (Ctrl+Home), save
        the screenshot ``shot`` and return the text of the lines on screen, without whitespace (long values wrap)."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        editor = self.find(f"({self.EDITOR})[1]")
        lines = self.find(".//*[contains(@class, 'view-lines')]", editor)
        keys = ActionChains(self.d).click(lines).key_down(Keys.CONTROL).send_keys("k").send_keys("j")
        keys.send_keys(Keys.HOME).key_up(Keys.CONTROL).perform()
        self.wait.until(lambda _: '"retention":{' in "".join(lines.text.split()))
        time.sleep(0.5)  # the editor grows to its content's height (at most 300 px) after unfolding
        self.save(shot)
        return "".join(lines.text.split())

    def save(self, name: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        assert self.d.save_screenshot(str(self.shots / name)), f"no screenshot {name}"


def _run_state(stack: AirflowStack, run_id: str) -> str | None:
    try:
        state = stack.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
    except OSError:  # the API server busy past the client's 30 s (a loaded machine): ask again
        return None
    assert state != "failed", f"the run failed:\n{stack.logs_tail()}"
    return state if state == "success" else None


@pytest.mark.timeout(600)
def test_asset_page_of_a_locked_replica_shows_its_retention(
    browser: Any,  # noqa: F811
    clouds: dict[str, Any],
    tmp_path: Path,
) -> None:
    raw = clouds["s3"].create_bucket()
    for name, data in FILES.items():
        clouds["s3"].store(raw).write(f"flights/date={DAY}/{name}", [data])
    vault = {"cos": locked_cos(clouds["cos"]), "oss": locked_oss(clouds["oss"], days=40)}
    env = {
        **connection_env(clouds),
        "MULTICLOUD_IMMUTABLE_SOURCE": f"s3://{raw}/flights/",
        "MULTICLOUD_IMMUTABLE_DESTINATIONS": ",".join(f"{c}://{s.bucket}/flights/" for c, s in vault.items()),
        "MULTICLOUD_IMMUTABLE_RETENTION_DAYS": str(DAYS),
        # only the run this test triggers: unpausing would also start today's scheduled run (an empty partition,
        # retried every 5 minutes) ahead of it, and the DAG runs one at a time
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # the task's calls to the Execution API wait 5 s by default: too short for a loaded 2-core machine
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
    }
    stack = AirflowStack(
        tmp_path / "home", SAMPLE_DAGS, components=("api-server", "dag-processor", "scheduler"), extra_env=env
    )
    update = os.environ.get("MULTICLOUD_UPDATE_SCREENSHOTS") == "1"
    t0 = time.monotonic()
    try:
        stack.start()
        stack.wait_healthy(timeout=120)
        stack.unpause(DAG_ID)
        asked_at = datetime.now(UTC)
        run = stack.rest("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": "2013-01-03T01:00:00Z"})
        stack.wait_for("the immutable run to succeed", lambda: _run_state(stack, run["dag_run_id"]), 300, 2)
        print(f"[{time.monotonic() - t0:6.1f} s] run succeeded")

        events = stack.rest("GET", f"/api/v2/assets/events?source_dag_id={DAG_ID}&limit=10")["asset_events"]
        by_cloud = {e["uri"].split("://")[0]: e for e in events if e["source_run_id"] == run["dag_run_id"]}
        assert set(by_cloud) == {"cos", "oss"}, [e["uri"] for e in events]
        for cloud, event in by_cloud.items():
            held = event["extra"]["retention"]
            assert held["object_lock"] is True and held["mode"] == "COMPLIANCE", (cloud, held)
            until = datetime.fromisoformat(held["retain_until"])
            assert timedelta(days=DAYS - 1) < until - asked_at <= timedelta(days=DAYS, minutes=5), (cloud, held)
            assert "nobody" in held["who_can_delete"], held
            # the clouds hold what the extra says: COS per object, OSS by the bucket's locked WORM period
            kept = vault[cloud].object_retention(f"flights/date={DAY}/part-0.csv")
            assert kept.until is not None and kept.until >= until - timedelta(seconds=1), (cloud, kept, until)
            assert not json.dumps(event["extra"]).count(env[f"AIRFLOW_CONN_{cloud.upper()}_DEFAULT"][-12:])
        assert by_cloud["oss"]["extra"]["retention"]["days"] == 40  # the bucket-wide WORM period

        ui = AssetsUI(browser, stack.url, DOC_SCREENSHOTS if update else tmp_path / "screenshots")
        ui.login("admin", stack.admin_password())
        browser.set_window_size(2000, 1100)  # a side panel wide enough for the extra's retention without wrapping
        for cloud, event in sorted(by_cloud.items()):
            ui.open_asset(event["asset_id"], event["uri"])
            shown = ui.event_extra(f"asset_retention_{cloud}_replica.png")
            held = event["extra"]["retention"]
            for key in ("mode", "retain_until", "days", "who_can_delete"):
                pair = "".join(f"{json.dumps(key)}:{json.dumps(held[key])}".split())
                assert pair in shown, f"{cloud}: {pair} is not on the asset page, which shows:\n{shown}"
        print(f"[{time.monotonic() - t0:6.1f} s] asset pages checked")
    finally:
        stack.stop()
