"""What every local stand-in for a cloud offers to tests, the demo and ``multicloud serve-local``."""

from __future__ import annotations

from typing import Any, Protocol

from airflow_multicloud.stores.base import ObjectStore, TransferConfig
from multicloud_testbed.faults import Faults
from multicloud_testbed.http import RequestRecord

ACCESS_KEY = "LOCALTESTKEY0000"
SECRET_KEY = "local-test-secret-0000000000000000"


class LocalService(Protocol):
    """A running local server for one cloud.

    ``requests`` is the log of every request seen (clear it with ``clear_log``); ``faults`` takes fault rules
    (see :mod:`multicloud_testbed.faults`).
    """

    name: str  # "s3" | "cos" | "oss"
    endpoint: str  # http://127.0.0.1:PORT
    faults: Faults
    requests: list[RequestRecord]

    def start(self) -> LocalService: ...

    def stop(self) -> None: ...

    def clear_log(self) -> None: ...

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique valid name when None) and return its name."""
        ...

    def store(
        self, bucket: str, *, transfer: TransferConfig | None = None, secret: str | None = None, label: str = ""
    ) -> ObjectStore:
        """A store for ``bucket`` on this server through the real SDK; ``secret`` overrides the right one."""
        ...

    def connection(self, conn_id: str) -> dict[str, Any]:
        """An Airflow connection (``conn_type``, ``login``, ``password``, ``extra`` ...) for this server,
        as JSON for ``AIRFLOW_CONN_<ID>``."""
        ...

    def corrupt(self, bucket: str, key: str, offset: int = 0) -> None:
        """Flip one stored byte without updating checksums."""
        ...
