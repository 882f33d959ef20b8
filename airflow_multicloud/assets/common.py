"""Sanitising, creating and converting object-store Asset URIs; one function set serves cos:// and oss://."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_multicloud.uri import parse_uri

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow.sdk import Asset


def sanitize(uri: SplitResult, scheme: str) -> SplitResult:
    """Reject an asset URI with no bucket or an invalid bucket name, quoting it."""
    if not uri.netloc:
        raise ValueError(f"URI format {scheme}:// must contain a bucket name, got {uri.geturl()!r}")
    parse_uri(uri.geturl())
    return uri


def create(scheme: str, bucket: str, key: str, extra: dict[str, Any] | None = None) -> Asset:
    from airflow.sdk import Asset

    return Asset(uri=f"{scheme}://{bucket}/{key}", extra=extra)


def to_openlineage(asset: Asset) -> Any:
    """OpenLineage has no naming rule for COS or OSS yet; follow the S3 one, as the operators' facets do."""
    from airflow_multicloud.lineage.datasets import openlineage_dataset

    return openlineage_dataset(asset.uri)
