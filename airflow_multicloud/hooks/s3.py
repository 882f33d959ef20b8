"""S3 stores from Airflow ``aws`` connections, through the amazon provider's S3Hook."""

from __future__ import annotations

from airflow_multicloud.stores.base import TransferConfig
from airflow_multicloud.stores.s3 import S3Store


def s3_store_from_connection(conn_id: str, bucket: str, transfer: TransferConfig | None = None) -> S3Store:
    """An :class:`S3Store` for ``bucket`` with the credentials, region and ``endpoint_url`` of ``conn_id``.

    Errors name ``conn_id``, never its secret.
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    client = S3Hook(aws_conn_id=conn_id).get_conn()
    return S3Store(client, bucket, label=conn_id, transfer=transfer)
