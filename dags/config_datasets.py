"""DAGs from ``datasets.yaml`` beside this file: add a dataset there, no Python needed.

A bad entry fails this file's import with a message naming the entry and the field (shown in the UI).
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow_multicloud.dag_factory import build_dag, load_entries

CONFIG = Path(os.environ.get("MULTICLOUD_DATASETS_YAML", Path(__file__).with_name("datasets.yaml")))

for _entry in load_entries(CONFIG):
    globals()[f"replicate_{_entry.name}"] = build_dag(_entry, fileloc=__file__)
