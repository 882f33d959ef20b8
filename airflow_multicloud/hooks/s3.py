"""S3 stores from Airflow ``aws`` connections, through the amazon provider's S3Hook."""

from __future__ import annotations

from typing import Any

from airflow_multicloud.hooks.settings import s3_client_config, s3_data_client
from airflow_multicloud.stores.base import TransferConfig
from airflow_multicloud.stores.s3 import S3Store


def make_s3_hook(conn_id: str) -> Any:
    """The amazon provider's S3Hook for ``conn_id``, with a connection pool sized for parallel copies."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import BaseHook

    # keep what the connection's own config_kwargs say, adding only the pool size and checksum mode; read here,
    # not through a second S3Hook, whose connection wrapper would log its credentials line once more
    try:
        own = BaseHook.get_connection(conn_id).extra_dejson.get("config_kwargs")
    except AirflowNotFoundException:
        own = None
    return S3Hook(aws_conn_id=conn_id, config=s3_client_config(own))


def s3_store_from_connection(
    conn_id: str, bucket: str, transfer: TransferConfig | None = None, hook: Any = None
) -> S3Store:
    """An :class:`S3Store` for ``bucket`` with the credentials, region and ``endpoint_url`` of ``conn_id``.

    Errors name ``conn_id``, never its secret.
    """
    hook = hook or make_s3_hook(conn_id)
    data_client = s3_data_client(hook.conn_config.extra_config, conn_id)
    return S3Store(hook.get_conn(), bucket, label=conn_id, transfer=transfer, data_client=data_client)


def open_bucket(conn_id: str, bucket: str, transfer: TransferConfig | None = None) -> tuple[S3Store, Any]:
    """The opener ``schemes.py`` names for ``s3://``: the store and the S3Hook that built it."""
    hook = make_s3_hook(conn_id)
    return s3_store_from_connection(conn_id, bucket, transfer=transfer, hook=hook), hook
