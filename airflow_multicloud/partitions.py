"""Which day's partition a run handles: from the data interval, with a fallback for runs that have none."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any


def partition_day(data_interval_start: datetime | None, dag_run: Any = None) -> str:
    """The ``YYYY-MM-DD`` of the run's data interval start.

    Runs without a logical date (asset-triggered, some manual or API runs) have no data interval: such a run
    takes ``partition`` from its conf if given, else the day before it was due (``run_after``), the same day a
    scheduled run at that time would have copied.
    """
    if data_interval_start is not None:
        return data_interval_start.date().isoformat()
    conf = getattr(dag_run, "conf", None) or {}
    if conf.get("partition"):
        try:
            return date.fromisoformat(str(conf["partition"])).isoformat()
        except ValueError:
            raise ValueError(f"run conf partition={conf['partition']!r} is not a date: use YYYY-MM-DD") from None
    run_after = getattr(dag_run, "run_after", None) or datetime.now()
    return (run_after.date() - timedelta(days=1)).isoformat()


MACROS = {"partition_day": partition_day}
PARTITION_TEMPLATE = "{{ partition_day(data_interval_start, dag_run) }}"
