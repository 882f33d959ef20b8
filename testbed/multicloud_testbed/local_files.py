"""Local folders behind the same test-bed interface as the cloud stand-ins (no server, no request log)."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

from airflow_multicloud.stores.base import ObjectStore, TransferConfig
from multicloud_testbed.faults import Faults
from multicloud_testbed.http import RequestRecord


class LocalFilesService:
    name = "file"

    def __init__(self, root: str | Path | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="multicloud-files-") if root is None else None
        self.root = Path(root) if root is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.endpoint = self.root.as_uri()
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        self._n = itertools.count()

    def start(self) -> LocalFilesService:
        return self

    def stop(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def clear_log(self) -> None:
        self.requests.clear()

    def create_bucket(self, name: str | None = None) -> str:
        path = self.root / (name or f"bucket-{next(self._n)}")
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def store(
        self, bucket: str, *, transfer: TransferConfig | None = None, secret: str | None = None, label: str = ""
    ) -> ObjectStore:
        from airflow_multicloud.stores.local import LocalStore

        return LocalStore(bucket, label=label or "local files", transfer=transfer)

    def connection(self, conn_id: str) -> dict[str, Any]:
        return {"conn_type": "fs", "extra": {"path": str(self.root)}}

    def corrupt(self, bucket: str, key: str, offset: int = 0) -> None:
        with open(Path(bucket) / key, "r+b") as f:
            f.seek(offset)
            b = f.read(1)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0xFF]))
