"""``oss://bucket/key`` assets, in the shape of the amazon provider's ``assets/s3.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_multicloud.assets import common

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset


def sanitize_uri(uri: SplitResult) -> SplitResult:
    return common.sanitize(uri, "oss")


def create_asset(*, bucket: str, key: str, extra: dict[str, Any] | None = None) -> Asset:
    return common.create("oss", bucket, key, extra)


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any) -> Any:
    return common.to_openlineage(asset)
