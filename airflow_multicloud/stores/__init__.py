"""Object stores behind one interface. No Airflow here; each module imports its own SDK lazily."""

from __future__ import annotations

from airflow_multicloud.stores.base import (
    MiB,
    ObjectInfo,
    ObjectStore,
    PartInfo,
    TransferConfig,
    UploadInfo,
    WriteResult,
)

__all__ = ["MiB", "ObjectInfo", "ObjectStore", "PartInfo", "TransferConfig", "UploadInfo", "WriteResult"]
