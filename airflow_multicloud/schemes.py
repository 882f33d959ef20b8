"""The one table of dataset schemes: a fourth cloud is one module per layer and one line here.

Static data and dotted paths only, imported by ``provider.py``: nothing here may import Airflow or an SDK, and
nothing may raise (a ``get_provider_info`` that raises breaks every ``airflow`` command).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Scheme:
    """What the package knows about one URI scheme.

    :param name: the canonical scheme, as URIs are printed.
    :param aliases: other spellings parsed as this scheme (``cosn`` is the Hadoop-COS name).
    :param default_conn_id: the Airflow connection used when none is named; empty for local files.
    :param opener: ``module:function`` taking ``(conn_id, bucket, transfer)`` and returning the store and the
        hook that built it.
    :param env_opener: ``module:function`` taking ``(connection or None, conn_id, bucket, transfer)`` and returning
        a store built from a connection read from the environment without Airflow (the CLI), or None when Airflow
        must build it; empty: always through ``opener``.
    :param hook: the Airflow hook class, as ``module.Class``.
    :param store: the :class:`~airflow_multicloud.stores.base.ObjectStore` class, as ``module.Class``.
    :param asset_module: module with ``sanitize_uri``, ``create_asset`` and ``convert_asset_to_openlineage``,
        registered with Airflow under ``asset-uris``; empty where another provider owns the scheme.
    :param fs_module: module with ``schemes`` and ``get_fs``, registered with Airflow under ``filesystems`` for
        ``ObjectStoragePath``; empty where another provider owns the scheme.
    :param bucket_pattern: what a valid bucket name looks like, and ``bucket_hint`` says it in words.
    :param connection_optional: the default connection may be absent (the SDK then finds credentials itself).
    """

    name: str
    aliases: tuple[str, ...] = ()
    default_conn_id: str = ""
    opener: str = ""
    env_opener: str = ""
    hook: str = ""
    store: str = ""
    asset_module: str = ""
    fs_module: str = ""
    bucket_pattern: re.Pattern[str] | None = None
    bucket_hint: str = ""
    connection_optional: bool = False

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme(
            "s3",
            aliases=("s3a",),
            default_conn_id="aws_default",
            opener="airflow_multicloud.hooks.s3:open_bucket",
            env_opener="airflow_multicloud.hooks.settings:open_s3_env",
            hook="airflow.providers.amazon.aws.hooks.s3.S3Hook",
            store="airflow_multicloud.stores.s3.S3Store",
            bucket_pattern=re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"),
            bucket_hint="3-63 lowercase letters, digits, dots and hyphens",
            connection_optional=True,
        ),
        Scheme(
            "cos",
            aliases=("cosn",),
            default_conn_id="cos_default",
            opener="airflow_multicloud.hooks.cos:open_bucket",
            env_opener="airflow_multicloud.hooks.settings:open_cos_env",
            hook="airflow_multicloud.hooks.cos.CosHook",
            store="airflow_multicloud.stores.cos.CosStore",
            asset_module="airflow_multicloud.assets.cos",
            fs_module="airflow_multicloud.fs.cos",
            bucket_pattern=re.compile(r"^[a-z0-9][a-z0-9\-]*-\d+$"),
            bucket_hint="lowercase name followed by -APPID, e.g. backups-1250000000",
        ),
        Scheme(
            "oss",
            default_conn_id="oss_default",
            opener="airflow_multicloud.hooks.oss:open_bucket",
            env_opener="airflow_multicloud.hooks.settings:open_oss_env",
            hook="airflow_multicloud.hooks.oss.OssHook",
            store="airflow_multicloud.stores.oss.OssStore",
            asset_module="airflow_multicloud.assets.oss",
            fs_module="airflow_multicloud.fs.oss",
            bucket_pattern=re.compile(r"^[a-z0-9][a-z0-9\-]{1,61}[a-z0-9]$"),
            bucket_hint="3-63 lowercase letters, digits and hyphens",
        ),
        Scheme("file", store="airflow_multicloud.stores.local.LocalStore"),
    )
}

#: every spelling a URI may use, to its canonical scheme
SCHEME_ALIASES: dict[str, str] = {spelling: s.name for s in SCHEMES.values() for spelling in s.spellings}


def listed() -> str:
    """The schemes for an error message: ``s3:// (or s3a://), cos:// (or cosn://), oss://, file://``."""
    return ", ".join(
        f"{s.name}://" + (f" (or {', '.join(a + '://' for a in s.aliases)})" if s.aliases else "")
        for s in SCHEMES.values()
    )
