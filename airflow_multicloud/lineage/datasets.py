"""Assets and OpenLineage datasets for dataset URIs (s3://, cos://, oss://, file://), as written in a DAG.

A URI argument can be a literal, a Jinja template or an XComArg (an upstream task's output). What the DAG file
fixes is checked and named when the DAG is parsed; the rest when the task runs, with the same messages.

One naming scheme serves assets and OpenLineage: the dataset is the stable part of the URI (``s3://raw/sales/``
for ``s3://raw/sales/date={{ ds }}/``), named as OpenLineage names S3 (namespace ``scheme://bucket``, name the
prefix); the location one run read or wrote is that dataset's ``subset`` facet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_multicloud.errors import InvalidURIError
from airflow_multicloud.uri import check_scheme, parse_uri

if TYPE_CHECKING:
    from airflow.sdk import Asset

_JINJA = ("{{", "{%")


def _resolved_at_run_time(value: object) -> bool:
    from airflow.sdk import XComArg

    return isinstance(value, XComArg)


def _template_head(uri: str) -> str:
    """The literal text before the first Jinja marker (all of ``uri`` when it is not a template)."""
    cuts = [i for i in (uri.find(m) for m in _JINJA) if i >= 0]
    return uri[: min(cuts)] if cuts else uri


def stable_uri(value: object) -> str | None:
    """The dataset a URI argument names whatever the run: up to the last ``/`` before the first template marker.

    ``s3://raw/flights/date={{ ds }}/`` names ``s3://raw/flights/``: one asset per dataset, one asset event per
    run, not one asset per day. None when the DAG file does not fix a bucket (``s3://{{ var.value.b }}/x/``) or
    the value is an XComArg. Raises :class:`InvalidURIError` for what is already wrong in the literal part.
    """
    if not isinstance(value, str):
        return None
    head = _template_head(value)
    if head == value:
        return str(parse_uri(value))
    raw_scheme, sep, rest = head.partition("://")
    if not sep:
        return None
    check_scheme(value, raw_scheme)
    cut = rest[: rest.rfind("/") + 1]
    if not cut.strip("/"):
        return None
    head_uri = f"{raw_scheme}://{cut}"
    try:
        return str(parse_uri(head_uri))
    except InvalidURIError as exc:
        # quote what the user wrote, not the part of it that was checked
        raise InvalidURIError(str(exc).replace(repr(head_uri), repr(value), 1)) from None


def check_uri_argument(name: str, value: object) -> list[str | None]:
    """Check a URI argument (one URI or a list) when the DAG is parsed; return each URI's stable dataset.

    Literals are parsed whole; templates as far as their literal head goes (scheme, bucket); XComArgs are
    checked when the task runs (:func:`rendered_uris`). An XComArg for the whole list returns ``[]``.
    """
    if _resolved_at_run_time(value):
        return []
    values: Iterable[object] = [value] if isinstance(value, str) else value if isinstance(value, Sequence) else [value]
    out: list[str | None] = []
    for item in values:
        if not isinstance(item, str) and not _resolved_at_run_time(item):
            raise InvalidURIError(
                f"{name}={item!r} is not a dataset URI: pass a string such as s3://bucket/prefix/, a Jinja "
                "template of one, or an upstream task's output (XComArg)"
            )
        try:
            out.append(stable_uri(item))
        except InvalidURIError as exc:
            raise InvalidURIError(f"{name}: {exc}") from None
    return out


def rendered_uris(name: str, value: object) -> list[str]:
    """The URIs of an argument after Airflow rendered its templates and resolved its XComArgs, each checked."""
    values: list[object] = [value] if isinstance(value, str) or not isinstance(value, Sequence) else list(value)
    out: list[str] = []
    for item in values:
        if not isinstance(item, str):
            raise InvalidURIError(
                f"{name} resolved to {item!r} ({type(item).__name__}), not a dataset URI: make the template or "
                "upstream task return a string such as s3://bucket/prefix/ (or a list of them)"
            )
        try:
            parse_uri(item)
        except InvalidURIError as exc:
            raise InvalidURIError(f"{name}: {exc}") from None
        out.append(item)
    return out


def assets_for(stable: Iterable[str | None]) -> list[Asset]:
    """One Asset per dataset the DAG file fixes (templated buckets and XComArgs have none)."""
    from airflow.sdk import Asset

    return [Asset(uri=u) for u in dict.fromkeys(s for s in stable if s)]


def _folder(uri: str) -> str:
    return uri.rstrip("/") + "/"


def dataset_of(uri: str, stable: Iterable[str | None]) -> str:
    """The dataset ``uri`` (a rendered location) belongs to: the longest stable URI it lies under, else itself."""
    canonical = str(parse_uri(uri))
    under = [s for s in stable if s and _folder(canonical).startswith(_folder(s))]
    return max(under, key=len) if under else canonical


def matching_asset(uri: str, outlets: Iterable[Any]) -> Any | None:
    """The outlet Asset whose URI ``uri`` lies under (the longest), for that run's asset event."""
    from airflow.sdk import Asset

    canonical = _folder(str(parse_uri(uri)))
    under = [a for a in outlets if isinstance(a, Asset) and canonical.startswith(_folder(a.uri))]
    return max(under, key=lambda a: len(a.uri)) if under else None


def openlineage_names(uri: str) -> tuple[str, str]:
    """OpenLineage's ``(namespace, name)`` for a dataset URI, as OpenLineage names S3; COS and OSS follow it."""
    parsed = parse_uri(uri)
    # without the trailing "/", as Airflow stores an asset's URI: the facets then name what the asset names
    prefix = parsed.prefix.rstrip("/")
    if parsed.scheme == "file":
        return "file", "/" + prefix
    return f"{parsed.scheme}://{parsed.bucket}", prefix or "/"


def openlineage_dataset(uri: str, facets: dict[str, Any] | None = None) -> Any:
    """An OpenLineage Dataset for a dataset URI (no run-specific facets)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    namespace, name = openlineage_names(uri)
    return Dataset(namespace=namespace, name=name, facets=facets or {})


def lineage_dataset(
    uri: str, stable: Iterable[str | None], *, output: bool, facets: dict[str, Any] | None = None, **run_facets: Any
) -> Any:
    """The InputDataset or OutputDataset for a location a run read or wrote, named as its asset.

    When ``uri`` is a partition of a stable dataset, the dataset carries a ``subset`` facet with the location.
    ``run_facets`` are further input (or output) facets, e.g. ``dataQualityMetrics``.
    """
    from airflow.providers.common.compat.openlineage.facet import InputDataset, OutputDataset
    from openlineage.client.generated.base_subset_dataset import (
        InputSubsetInputDatasetFacet,
        LocationSubsetCondition,
        OutputSubsetOutputDatasetFacet,
    )

    dataset = dataset_of(uri, stable)
    namespace, name = openlineage_names(dataset)
    location = str(parse_uri(uri))
    if location != dataset:
        condition = LocationSubsetCondition(locations=[location])
        run_facets["subset"] = (
            OutputSubsetOutputDatasetFacet(outputCondition=condition)
            if output
            else InputSubsetInputDatasetFacet(inputCondition=condition)
        )
    if output:
        return OutputDataset(namespace=namespace, name=name, facets=facets or {}, outputFacets=run_facets)
    return InputDataset(namespace=namespace, name=name, facets=facets or {}, inputFacets=run_facets)


def rendered_uri(name: str, value: object) -> str:
    """The one URI of an argument that takes a single URI, after rendering, checked."""
    if not isinstance(value, str):
        raise InvalidURIError(
            f"{name} resolved to {value!r} ({type(value).__name__}), not a dataset URI: make the template or "
            "upstream task return one string such as s3://bucket/prefix/"
        )
    return rendered_uris(name, value)[0]


def lineage_datasets(
    value: object, stable: Sequence[str | None], *, output: bool, facets: Sequence[dict[str, Any]] = ()
) -> list[Any]:
    """Datasets for what an argument names now, for lineage that must not fail: on a task that failed before its
    templates rendered (or with a bad URI), the stable datasets stand in for the locations."""
    try:
        uris = rendered_uris("uri", value)
    except InvalidURIError:
        uris = [s for s in stable if s]
    return [
        lineage_dataset(u, stable, output=output, **(facets[i] if i < len(facets) else {})) for i, u in enumerate(uris)
    ]
