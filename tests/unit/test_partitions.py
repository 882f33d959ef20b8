from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from airflow_multicloud.partitions import partition_day


def test_day_comes_from_the_data_interval() -> None:
    assert partition_day(datetime(2013, 1, 5, tzinfo=UTC)) == "2013-01-05"


def test_run_without_interval_uses_conf_then_the_day_before_run_after() -> None:
    assert partition_day(None, SimpleNamespace(conf={"partition": "2013-01-02"}, run_after=None)) == "2013-01-02"
    run = SimpleNamespace(conf={}, run_after=datetime(2013, 1, 10, 3, tzinfo=UTC))
    assert partition_day(None, run) == "2013-01-09"


def test_bad_partition_in_conf_is_named() -> None:
    with pytest.raises(ValueError, match="2013-13-01"):
        partition_day(None, SimpleNamespace(conf={"partition": "2013-13-01"}, run_after=None))
