"""``UPath`` classes for ``cos://``, ``cosn://`` and ``oss://``, which universal_pathlib (under Airflow's
``ObjectStoragePath``) loads through our ``universal_pathlib.implementations`` entry points.

Importing this module also tells universal_pathlib to parse these schemes as it parses ``s3://`` (the bucket is
the anchor of the path) and gives fsspec the filesystem classes themselves: universal_pathlib has no public way to
declare either, and without them it warns on every path and treats the bucket as a plain directory.
"""

from __future__ import annotations

import fsspec
from upath._flavour import WrappedFileSystemFlavour
from upath.implementations.cloud import CloudPath

from airflow_multicloud.fs.cos import CosFileSystem
from airflow_multicloud.fs.oss import OssFileSystem
from airflow_multicloud.fs.store_fs import StoreFileSystem


def _register(filesystems: dict[str, type[StoreFileSystem]]) -> None:
    config = WrappedFileSystemFlavour.protocol_config
    for name, fs_class in filesystems.items():
        fsspec.register_implementation(name, fs_class, clobber=True)
        config["netloc_is_anchor"].add(name)
        config["supports_empty_parts"].add(name)


_register({name: fs for fs in (CosFileSystem, OssFileSystem) for name in fs.protocol})


class CosPath(CloudPath):
    """A ``cos://bucket-APPID/key`` path."""

    __slots__ = ()


class OssPath(CloudPath):
    """An ``oss://bucket/key`` path."""

    __slots__ = ()
