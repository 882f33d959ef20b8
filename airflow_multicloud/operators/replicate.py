"""ReplicateDatasetOperator: copy a dataset to one or more clouds, verified, with a manifest and lineage."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_multicloud import arguments
from airflow_multicloud.lineage.datasets import (
    assets_for,
    check_uri_argument,
    lineage_datasets,
    matching_asset,
    rendered_uri,
    rendered_uris,
)
from airflow_multicloud.operators.links import LinkKind, replica_links
from airflow_multicloud.replication.copy import MAX_BUFFER, CopyOptions
from airflow_multicloud.replication.cost import BudgetExceededError
from airflow_multicloud.replication.engine import ReplicationOptions
from airflow_multicloud.replication.manifest import DEFAULT_MANIFEST_DIR
from airflow_multicloud.replication.model import Mode, Overwrite, parse_choice
from airflow_multicloud.replication.plan import Filters
from airflow_multicloud.replication.retention import RetentionUnavailableError, parse_retention, retention_extra
from airflow_multicloud.stores.base import DEFAULT_TRANSFER

if TYPE_CHECKING:
    from airflow.sdk import Context, XComArg

    from airflow_multicloud.replication.model import Location, RunSummary


class ReplicateDatasetOperator(BaseOperator):
    """Replicate every object under ``source`` to each of ``destinations`` and prove each copy.

    Each object is read once and streamed to every destination; a copy counts only when the bytes the
    destination keeps match the bytes read (MD5 ETags and CRC64-XZ). A rerun skips objects whose verified copy
    of the same source version is already there, reading no object data. Each run writes a JSON Lines manifest
    under ``<destination>/_multicloud/manifests/`` and returns a summary to XCom. The task fails at the end,
    naming every object that could not be copied.

    :param source: dataset URI, e.g. ``s3://raw/sales/{{ data_interval_start | ds }}/`` (templated), or an upstream
        task's output (XComArg). The part up to the last ``/`` before the first template (``s3://raw/sales/``) is
        the task's inlet asset; a templated bucket or an XComArg gives none.
    :param destinations: one URI or a list (templated; XComArgs too), each the task's outlet asset likewise.
    :param source_conn_id: Airflow connection for the source (default: the scheme's ``*_default``).
    :param destination_conn_ids: one connection id for every destination, or one per destination.
    :param mode: ``copy`` (never deletes) or ``mirror`` (deletes destination objects absent at the source, after
        every copy verified, at most ``max_delete`` of them).
    :param overwrite: ``if_changed`` or ``never`` (a changed source object is reported, not overwritten).
    :param include: globs on keys relative to the source prefix; ``exclude`` leaves keys out.
    :param min_age: skip objects modified more recently than this (files still being written).
    :param max_age: skip objects modified longer ago than this.
    :param dry_run: plan and report only.
    :param allow_empty: an empty source is an error unless this is set.
    :param workers: objects in flight; ``large_workers`` of them may be multipart.
    :param multipart_threshold: multipart at or above this size; ``part_size`` and ``part_concurrency`` per object.
    :param bandwidth_limit: bytes per second read from the source, across all workers.
    :param max_buffer: bytes of object data the task may hold in memory at once, across all workers (an object
        needing more is copied alone).
    :param object_retries: further attempts per object after a failure (5xx, reset, checksum mismatch).
    :param server_side: copy within one service server-side (proven by both sides' checksums, else streamed).
    :param source_verification: ``auto`` proves each object read with the source's own checksums, else by a second
        read; ``strict`` fails objects whose source holds no checksum.
    :param plan_shard: a shard from :class:`PlanReplicationOperator` (for ``.expand()``): copy just those objects.
    :param retention: keep each replica write-once for this many days or until this ISO date (S3 Object Lock,
        COS object lock; OSS WORM is bucket-wide and only checked); ``retention_mode`` COMPLIANCE or GOVERNANCE.
    :param require_immutable: fail before copying when a destination cannot hold the retention, naming it.
    :param max_cost: fail before copying when the estimated egress and request cost is above this.
    :param pricing: path of a JSON pricing table replacing the shipped, dated one.
    """

    template_fields: Sequence[str] = ("source", "destinations", "source_conn_id", "destination_conn_ids")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        source: str | XComArg,
        destinations: str | Sequence[str | XComArg] | XComArg,
        source_conn_id: str | None = None,
        destination_conn_ids: str | Sequence[str] | None = None,
        mode: str = "copy",
        overwrite: str = "if_changed",
        max_delete: int = 0,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        min_age: timedelta | None = None,
        max_age: timedelta | None = None,
        dry_run: bool = False,
        allow_empty: bool = False,
        workers: int = ReplicationOptions.workers,
        large_workers: int = ReplicationOptions.large_workers,
        multipart_threshold: int = DEFAULT_TRANSFER.multipart_threshold,
        part_size: int = DEFAULT_TRANSFER.part_size,
        part_concurrency: int = DEFAULT_TRANSFER.max_concurrency,
        bandwidth_limit: int | None = None,
        max_buffer: int = MAX_BUFFER,
        object_retries: int = 3,
        server_side: bool = True,
        source_verification: str = "auto",
        manifest_dir: str = DEFAULT_MANIFEST_DIR,
        progress_interval: float = 30.0,
        plan_shard: dict[str, Any] | None = None,
        retention: int | str | None = None,
        retention_mode: str = "COMPLIANCE",
        require_immutable: bool = False,
        max_cost: float | None = None,
        pricing: str | None = None,
        **kwargs: Any,
    ) -> None:
        # what the DAG file fixes is checked now; templates and XComArgs once rendered, in _locations
        source_datasets = check_uri_argument("source", source)
        destination_datasets = check_uri_argument("destinations", destinations)
        kwargs.setdefault("inlets", assets_for(source_datasets))
        kwargs.setdefault("outlets", assets_for(destination_datasets))
        super().__init__(**kwargs)
        self.source = source
        self.destinations = [destinations] if isinstance(destinations, str) else destinations
        self.source_datasets = source_datasets
        self.destination_datasets = destination_datasets
        self.operator_extra_links = replica_links(LinkKind.MANIFEST, self.destinations)
        self.source_conn_id = source_conn_id
        self.destination_conn_ids = destination_conn_ids
        # checked here so a wrong type, mode, overwrite or bound fails when the DAG is parsed, not at 2 a.m.
        self.transfer = arguments.transfer(multipart_threshold, part_size, part_concurrency)
        if bandwidth_limit is not None:
            arguments.whole("bandwidth_limit", bandwidth_limit, 1)
        self.bandwidth_limit = bandwidth_limit
        arguments.globs("include", include)
        arguments.globs("exclude", exclude)
        self.options = ReplicationOptions(
            mode=parse_choice(Mode, mode, "mode"),
            overwrite=parse_choice(Overwrite, overwrite, "overwrite"),
            filters=Filters(include, tuple(exclude), min_age, max_age),
            max_delete=max_delete,
            workers=workers,
            large_workers=large_workers,
            copy=CopyOptions(
                object_retries=object_retries,
                server_side=server_side,
                source_verification=source_verification,
                max_buffer=max_buffer,
            ),
            manifest_dir=manifest_dir,
            dry_run=dry_run,
            allow_empty=allow_empty,
            progress_interval=progress_interval,
            retention=retention,
            retention_mode=retention_mode,
            require_immutable=require_immutable,
            max_cost=max_cost,
            pricing=pricing,
        )
        parse_retention(retention, retention_mode)  # a wrong date or mode fails at parse time too
        self.plan_shard = plan_shard
        self._summary: RunSummary | None = None

    def _locations(self) -> tuple[Location, list[Location]]:
        from airflow_multicloud.hooks.factory import open_locations

        dests = rendered_uris("destinations", self.destinations)
        if not dests:
            arguments.uris("destinations", dests)  # refuses an empty list by name
        arguments.conn_ids("source_conn_id", self.source_conn_id)
        arguments.conn_ids("destination_conn_ids", self.destination_conn_ids)
        source_uri = rendered_uri("source", self.source)
        return open_locations(
            source_uri, self.source_conn_id, dests, self.destination_conn_ids, transfer=self.transfer, create=True,
            lineage=True,
        )  # fmt: skip

    def execute(self, context: Context) -> dict[str, Any]:
        from dataclasses import replace

        from airflow_multicloud.replication.engine import ReplicationError, replicate
        from airflow_multicloud.replication.model import Plan
        from airflow_multicloud.replication.plan_store import read_shard
        from airflow_multicloud.replication.stream import BandwidthLimiter

        source, dests = self._locations()
        options = replace(self.options, run_id=f"{context['dag'].dag_id}.{context['run_id']}.{self.task_id}")
        if self.bandwidth_limit:
            options = replace(options, copy=replace(options.copy, limiter=BandwidthLimiter(self.bandwidth_limit)))
        plan = shard = None
        if self.plan_shard is not None:
            header, entries = read_shard(dests[0], self.plan_shard)
            planned = (header.get("source"), header.get("destinations"))
            if planned != (source.uri, [d.uri for d in dests]):
                raise ValueError(
                    f"plan_shard: the plan {self.plan_shard['plan']} was made for {planned[0]} -> {planned[1]}, "
                    f"this task copies {source.uri} -> {[d.uri for d in dests]}: give it the plan task's arguments"
                )
            plan = Plan(entries)
            shard = f"{self.plan_shard['shard']}/{self.plan_shard['of']}"
        try:
            summary = replicate(source, dests, options, plan=plan, shard=shard)
        except ReplicationError as exc:
            self._summary = exc.summary
            raise
        except (RetentionUnavailableError, BudgetExceededError) as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(exc)) from exc  # a retry would be refused the same way
        self._summary = summary
        self._record_asset_events(context, summary)
        return summary.to_json()

    def _record_asset_events(self, context: Context, summary: RunSummary) -> None:
        locks = {r["destination"]: r for r in summary.retention}
        pairs = {p["destination"]: p for p in summary.cost.get("pairs", [])}
        for dest_uri, manifest in zip(summary.destinations, summary.manifests, strict=False):
            asset = matching_asset(dest_uri, self.outlets)
            if asset is None:
                continue
            protection = retention_extra(locks.get(dest_uri), pairs.get(dest_uri), summary.cost)
            context["outlet_events"][asset].extra = {
                "source": summary.source,
                "destination": dest_uri,
                # who can delete this replica first: the asset page shows the top of the extra without scrolling
                **({"retention": protection.pop("retention")} if "retention" in protection else {}),
                "objects": summary.objects,
                "bytes": summary.bytes,
                "copied": summary.copied,
                "skipped": summary.skipped,
                "manifest": manifest,
                "verified": summary.failed == 0 and not summary.dry_run,
                "run_id": summary.run_id,
                **protection,
            }

    def replica_file(self, kind: LinkKind, index: int) -> tuple[str, str | None] | None:
        """For the "Manifest" links: the manifest this run wrote next to the ``index``-th destination, and that
        destination's connection id; None before a run summary."""
        from airflow_multicloud.hooks.factory import pair_connections

        summary = self._summary
        if kind is not LinkKind.MANIFEST or summary is None or index >= len(summary.manifests):
            return None
        conns = pair_connections(summary.destinations, self.destination_conn_ids)
        return (summary.manifests[index], conns[index]) if summary.manifests[index] else None

    def get_openlineage_facets_on_start(self) -> Any:
        """The rendered source and destinations, so the START event names what COMPLETE will."""
        return self.get_openlineage_facets_on_complete(None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_multicloud.lineage.facets import output_statistics, replication_run_facets

        summary = self._summary
        return OperatorLineage(
            inputs=lineage_datasets(self.source, self.source_datasets, output=False),
            outputs=lineage_datasets(
                self.destinations, self.destination_datasets, output=True, facets=output_statistics(summary)
            ),
            run_facets=replication_run_facets(summary),
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """The same datasets, what was written before the failure, and which objects failed."""
        return self.get_openlineage_facets_on_complete(task_instance)


class PlanReplicationOperator(ReplicateDatasetOperator):
    """Plan a large replication once, split it into ``shards`` parts of about equal bytes, for
    ``ReplicateDatasetOperator.partial(...).expand(plan_shard=plan_task.output)``: each mapped task copies one
    shard, so Celery or Kubernetes workers share one partition. Takes the same arguments as
    :class:`ReplicateDatasetOperator`; it copies nothing.

    The plan is written once, as ``<first destination>/_multicloud/plans/<run>.jsonl.gz``; XCom carries one
    reference of a few hundred bytes per shard (``{"plan": uri, "shard": i, "of": n}``), whatever the number of
    objects, and each mapped task reads only its shard's entries.

    :param shards: how many parts to split the copies into (empty parts are dropped).
    """

    def __init__(self, *, shards: int = 4, **kwargs: Any) -> None:
        kwargs.setdefault("outlets", [])
        super().__init__(**kwargs)
        self.operator_extra_links = []  # a plan writes no manifest
        self.shards = arguments.whole("shards", shards, 1)

    def execute(self, context: Context) -> list[dict[str, Any]]:  # type: ignore[override]
        from airflow_multicloud.replication.engine import check_locations
        from airflow_multicloud.replication.plan import plan_copy
        from airflow_multicloud.replication.plan_store import write_plan

        source, dests = self._locations()
        check_locations(source, dests)
        plan = plan_copy(
            source,
            dests,
            filters=self.options.filters,
            overwrite=self.options.overwrite,
            manifest_dir=self.options.manifest_dir,
        )
        if not plan.objects and not self.options.allow_empty:
            raise ValueError(f"source {source.uri} holds no objects: check the prefix, or set allow_empty=True")
        parts = [p for p in plan.shard(self.shards) if p]
        self.log.info(
            "%d objects, %d copies to make in %d shards, %d skipped",
            plan.objects,
            plan.count("copy"),
            len(parts),
            plan.count("skip"),
        )
        run_id = f"{context['dag'].dag_id}.{context['run_id']}.{self.task_id}"
        header = {"source": source.uri, "destinations": [d.uri for d in dests]}
        return write_plan(dests[0], run_id, header, parts)
