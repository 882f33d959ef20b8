"""OpenLineage facets for a replication run: what each destination received, and what failed.

Imported only when OpenLineage asks an operator for its lineage, so the OpenLineage client stays out of DAG parsing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attrs import define, field
from openlineage.client.facet_v2 import RunFacet
from openlineage.client.generated.output_statistics_output_dataset import OutputStatisticsOutputDatasetFacet

if TYPE_CHECKING:
    from airflow_multicloud.replication.model import RunSummary

#: failed keys listed in the run facet; the manifest and the task log hold all of them
MAX_FAILED_KEYS = 20


@define
class ReplicationRunFacet(RunFacet):
    """The outcome of a ``ReplicateDatasetOperator`` run, in the event OpenLineage sends when it ends.

    ``verified`` is true only when every object was copied or skipped with a proven copy and it was not a dry run.
    """

    objects: int
    copied: int
    skipped: int
    failed: int
    verified: bool
    manifests: list[str] = field(factory=list)
    failed_keys: list[str] = field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return "urn:airflow-multicloud:openlineage:ReplicationRunFacet:1"  # described in docs/openlineage.md


def output_statistics(summary: RunSummary | None) -> list[dict[str, Any]]:
    """Per destination (in order): the ``outputStatistics`` facet, bytes and objects this run wrote there."""
    if summary is None:
        return []
    return [
        {"outputStatistics": OutputStatisticsOutputDatasetFacet(size=d.get("copied_bytes"), fileCount=d.get("copied"))}
        for d in summary.per_destination
    ]


def replication_run_facets(summary: RunSummary | None) -> dict[str, Any]:
    """``multicloud_replication``: counts, manifests and the first failed keys; nothing before a run summary."""
    if summary is None:
        return {}
    return {
        "multicloud_replication": ReplicationRunFacet(
            objects=summary.objects,
            copied=summary.copied,
            skipped=summary.skipped,
            failed=summary.failed,
            verified=summary.failed == 0 and not summary.dry_run,
            manifests=list(summary.manifests),
            failed_keys=summary.failed_keys[:MAX_FAILED_KEYS],
        )
    }
