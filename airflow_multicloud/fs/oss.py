"""``oss://`` for ``ObjectStoragePath``, with the credentials of a ``multicloud_oss`` Airflow connection.

Registered under ``filesystems`` in the provider info (Airflow calls :func:`get_fs`) and under ``fsspec.specs``,
which replaces fsspec's default for ``oss`` (ossfs, which knows no Airflow connection).
"""

from __future__ import annotations

from airflow_multicloud.fs.store_fs import StoreFileSystem, make_get_fs


class OssFileSystem(StoreFileSystem):
    """Alibaba Cloud OSS buckets through :class:`~airflow_multicloud.stores.oss.OssStore`."""

    scheme = "oss"
    protocol = ("oss",)


schemes = list(OssFileSystem.protocol)
get_fs = make_get_fs(OssFileSystem)
