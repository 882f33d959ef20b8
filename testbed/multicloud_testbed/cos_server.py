"""A local Tencent Cloud COS for tests, the demo and ``multicloud serve-local``: :class:`CosService`.

It speaks the COS XML REST API the way cos-python-sdk-v5 sends it (see :mod:`.cos_handler`), virtual-host style:
the bucket is the first label of ``Host: <bucket>.cos.<region>.myqcloud.com``, so the SDK reaches it through a
requests adapter that keeps that Host header (``CosStore.from_settings(endpoint=...)``). Objects stay on disk.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from airflow_multicloud.stores.base import TransferConfig
from multicloud_testbed.cos_handler import CosHandler
from multicloud_testbed.cos_limits import CosLimits
from multicloud_testbed.http import DiskBackedService, LocalObjectServer
from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

if TYPE_CHECKING:
    from qcloud_cos import CosS3Client

    from airflow_multicloud.stores.cos import CosStore

__all__ = ["CosHandler", "CosService"]


class CosService(DiskBackedService):
    """A running local COS for tests: ``CosService().start()``, then ``store(create_bucket())``.

    :param root: folder for the buckets (a temporary one when None).
    :param port: TCP port on 127.0.0.1 (0: any free one).
    :param region: the region the SDK is configured with (it only shapes the Host header).
    :param appid: the APPID suffix of bucket names.
    :param limits: the size limits of the real COS it enforces (tests lower them to reach a refusal cheaply).
    """

    name = "cos"
    sdk_retries = 1  # the SDK sleeps 1 s, 2 s, ... between retries: keep fault tests quick

    def __init__(
        self,
        root: str | None = None,
        port: int = 0,
        region: str = "ap-guangzhou",
        appid: str = "1250000000",
        limits: CosLimits | None = None,
    ) -> None:
        self.region = region
        self.appid = appid
        server = LocalObjectServer(CosHandler, port=port, root=root, credentials={ACCESS_KEY: SECRET_KEY})
        server.region = region  # type: ignore[attr-defined]
        server.limits = limits or CosLimits()  # type: ignore[attr-defined]
        self._attach(server)

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        if not name.endswith(f"-{self.appid}"):
            name = f"{name}-{self.appid}"
        self.server.buckets.create_bucket(name)
        return name

    def store(
        self, bucket: str, *, transfer: TransferConfig | None = None, secret: str | None = None, label: str = ""
    ) -> CosStore:
        from airflow_multicloud.stores.cos import CosStore

        return CosStore.from_settings(
            bucket,
            secret_id=ACCESS_KEY,
            secret_key=SECRET_KEY if secret is None else secret,
            region=self.region,
            scheme="http",
            endpoint=self.endpoint,
            label=label,
            transfer=transfer,
            retries=self.sdk_retries,
        )

    def client(self, secret: str | None = None, retries: int | None = None) -> CosS3Client:
        """A bare SDK client wired to this server, for SDK-level tests."""
        from airflow_multicloud.stores.cos import make_client

        return make_client(
            secret_id=ACCESS_KEY,
            secret_key=SECRET_KEY if secret is None else secret,
            region=self.region,
            scheme="http",
            endpoint=self.endpoint,
            retries=self.sdk_retries if retries is None else retries,
        )

    def connection(self, conn_id: str) -> dict[str, Any]:
        return {
            "conn_type": "cos",
            "description": f"local COS at {self.endpoint} ({conn_id})",
            "login": ACCESS_KEY,
            "password": SECRET_KEY,
            "extra": {"region": self.region, "scheme": "http", "endpoint": self.endpoint},
        }
