"""Triggers (run in the Airflow triggerer). Imported lazily, like :mod:`airflow_multicloud.sensors`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_multicloud.triggers.partition import DatasetPartitionTrigger

__all__ = ["DatasetPartitionTrigger"]


def __getattr__(name: str) -> Any:
    if name == "DatasetPartitionTrigger":
        from airflow_multicloud.triggers.partition import DatasetPartitionTrigger

        return DatasetPartitionTrigger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
