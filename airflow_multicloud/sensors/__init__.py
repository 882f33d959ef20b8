"""Sensors. Imported lazily: ``import airflow_multicloud.sensors`` alone loads neither Airflow nor any SDK."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_multicloud.sensors.partition import DatasetPartitionSensor

__all__ = ["DatasetPartitionSensor"]


def __getattr__(name: str) -> Any:
    if name == "DatasetPartitionSensor":
        from airflow_multicloud.sensors.partition import DatasetPartitionSensor

        return DatasetPartitionSensor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
