"""S3 stores from Airflow ``aws`` connections, through the amazon provider's S3Hook."""

from __future__ import annotations

from typing import Any

from airflow_multicloud.stores.base import CLIENT_POOL_SIZE, TransferConfig
from airflow_multicloud.stores.s3 import S3Store


def make_s3_hook(conn_id: str) -> Any:
    """The amazon provider's S3Hook for ``conn_id``, with a connection pool sized for parallel copies."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.config import Config

    config = Config(
        max_pool_connections=CLIENT_POOL_SIZE,
        # the signed payload (http) or Content-MD5 (https) already protects every PUT; a CRC32 would be another pass
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    # keep what the connection's own config_kwargs say, adding only the pool size and checksum mode
    own = S3Hook(aws_conn_id=conn_id).config
    return S3Hook(aws_conn_id=conn_id, config=own.merge(config) if own is not None else config)


def s3_store_from_connection(
    conn_id: str, bucket: str, transfer: TransferConfig | None = None, hook: Any = None
) -> S3Store:
    """An :class:`S3Store` for ``bucket`` with the credentials, region and ``endpoint_url`` of ``conn_id``.

    Errors name ``conn_id``, never its secret.
    """
    client = (hook or make_s3_hook(conn_id)).get_conn()
    return S3Store(client, bucket, label=conn_id, transfer=transfer)


def open_bucket(conn_id: str, bucket: str, transfer: TransferConfig | None = None) -> tuple[S3Store, Any]:
    """The opener ``schemes.py`` names for ``s3://``: the store and the S3Hook that built it."""
    hook = make_s3_hook(conn_id)
    return s3_store_from_connection(conn_id, bucket, transfer=transfer, hook=hook), hook
