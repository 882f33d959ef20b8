"""Assets and OpenLineage datasets for dataset URIs (s3://, cos://, oss://, file://)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_multicloud.uri import parse_uri

if TYPE_CHECKING:
    from airflow.sdk import Asset


def asset_uri(uri: str) -> str:
    """The stable part of a possibly templated dataset URI: up to the last ``/`` before the first ``{{``.

    ``s3://raw/flights/date={{ ds }}/`` names the asset ``s3://raw/flights/``: one asset per dataset, one asset
    event per run, not one asset per day.
    """
    cut = uri.split("{{", 1)[0]
    if cut != uri:
        cut = cut[: cut.rfind("/") + 1]
    parsed = parse_uri(cut)
    return str(parsed)


def dataset_asset(uri: str) -> Asset:
    from airflow.sdk import Asset

    return Asset(uri=asset_uri(uri))


def openlineage_dataset(uri: str, facets: dict[str, Any] | None = None) -> Any:
    """An OpenLineage Dataset, named as OpenLineage names S3 (namespace ``scheme://bucket``, name the key)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parsed = parse_uri(uri)
    if parsed.scheme == "file":
        return Dataset(namespace="file", name="/" + parsed.prefix, facets=facets or {})
    return Dataset(namespace=f"{parsed.scheme}://{parsed.bucket}", name=parsed.prefix or "/", facets=facets or {})
