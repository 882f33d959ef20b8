"""``cos://`` (and ``cosn://``) for ``ObjectStoragePath``, with the credentials of a ``cos`` Airflow connection.

Registered under ``filesystems`` in the provider info (Airflow calls :func:`get_fs`) and under ``fsspec.specs``
(so ``ObjectStoragePath`` and ``fsspec.filesystem("cos")`` know the scheme at all).
"""

from __future__ import annotations

from airflow_multicloud.fs.store_fs import StoreFileSystem, make_get_fs


class CosFileSystem(StoreFileSystem):
    """Tencent Cloud COS buckets (``name-APPID``) through :class:`~airflow_multicloud.stores.cos.CosStore`."""

    scheme = "cos"
    protocol = ("cos", "cosn")


schemes = list(CosFileSystem.protocol)
get_fs = make_get_fs(CosFileSystem)
