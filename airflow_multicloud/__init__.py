"""airflow-multicloud: verified copies of datasets on more than one cloud."""

from __future__ import annotations

__version__ = "0.1.0"
