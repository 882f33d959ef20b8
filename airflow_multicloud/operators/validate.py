"""ValidateReplicaOperator: prove that each replica still holds the source's data, and say so in the task log,
next to the replica (JSON and HTML reports), in XCom, in the asset event and in OpenLineage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_multicloud import arguments
from airflow_multicloud.errors import InvalidArgumentError, MulticloudError
from airflow_multicloud.lineage.datasets import (
    assets_for,
    check_uri_argument,
    lineage_dataset,
    lineage_datasets,
    matching_asset,
    rendered_uri,
    rendered_uris,
)
from airflow_multicloud.operators.links import LinkKind, replica_links
from airflow_multicloud.replication.manifest import DEFAULT_MANIFEST_DIR
from airflow_multicloud.validation.compare import LEVELS
from airflow_multicloud.validation.report import DEFAULT_REPORT_DIR

if TYPE_CHECKING:
    from airflow.sdk import Context, XComArg

    from airflow_multicloud.replication.model import Location
    from airflow_multicloud.validation.report import ValidationReport


class ReplicaMismatchError(MulticloudError):
    """A replica differs from its source (or could not be verified); the message lists the first differences."""


class ValidateReplicaOperator(BaseOperator):
    """Compare a dataset with its replicas and fail on any difference.

    ``quick`` reads no object data (listings, the replicas' manifests, HEADs where needed); ``full`` re-reads
    both sides and recomputes CRC64. Optionally counts rows per file on both sides and runs Great Expectations
    on each replica (the default suite: the source's row count, columns and types; plus ``expectations``).
    The JSON and HTML reports go to ``<replica>/<report_dir>`` (next to the manifests), the summary to XCom.

    :param source: dataset URI (templated), or an upstream task's output (XComArg).
    :param replicas: one URI or a list (templated; XComArgs too). Assets are derived as ReplicateDatasetOperator
        derives them: the part up to the last ``/`` before the first template.
    :param source_conn_id: connection for the source (default: the scheme's ``*_default``).
    :param replica_conn_ids: one connection id for every replica, or one per replica (None: the scheme default).
    :param level: ``quick`` or ``full``.
    :param count_rows: count rows of each data file on both sides.
    :param expectations: run expectations: glob on the relative key -> declared expectations
        (``{"expectation": "expect_...", "kwargs": {...}}``); ``{}`` runs the default suite only. None: no GX.
    :param sample: run declared expectations on a sample of this many rows per file (default: every row).
    :param formats: glob -> format (``csv``, ``jsonl.gz``, ``parquet``...) where extensions do not tell.
    :param allow_unverified: objects with no comparable checksum do not fail the task.
    :param report_dir: folder under each replica's prefix for the reports.
    :param retention: also check every replica object is retained (object lock / WORM) at least this many days
        or until this date, as the cloud reports it; objects retained less fail the task.
    :param replication: the summary a ReplicateDatasetOperator returned (e.g. ``replicate.output``): its copy
        counts and manifest locations join this task's asset events, so each replica gets one event per run that
        carries both the copy and its validation.
    """

    template_fields: Sequence[str] = ("source", "replicas", "source_conn_id", "replica_conn_ids", "replication")
    ui_color = "#eafaf1"

    def __init__(
        self,
        *,
        source: str | XComArg,
        replicas: str | Sequence[str | XComArg] | XComArg,
        source_conn_id: str | None = None,
        replica_conn_ids: str | Sequence[str | None] | None = None,
        level: str = "quick",
        count_rows: bool = False,
        expectations: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        sample: int | None = None,
        formats: Mapping[str, str] | None = None,
        allow_unverified: bool = False,
        workers: int = 8,
        manifest_dir: str = DEFAULT_MANIFEST_DIR,
        report_dir: str = DEFAULT_REPORT_DIR,
        replication: Any = None,
        retention: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        # what the DAG file fixes is checked now; templates and XComArgs once rendered, in _locations
        source_datasets = check_uri_argument("source", source)
        replica_datasets = check_uri_argument("replicas", replicas)
        kwargs.setdefault("inlets", assets_for(source_datasets))
        kwargs.setdefault("outlets", assets_for(replica_datasets))
        super().__init__(**kwargs)
        # checked here so a typo fails when the DAG is parsed, not when the task runs
        if level not in LEVELS:
            raise ValueError(f"level={level!r} is not supported: use 'quick' or 'full'")
        if sample is not None:
            arguments.whole("sample", sample, 1)
        arguments.whole("workers", workers, 1)
        arguments.flag("count_rows", count_rows)
        arguments.flag("allow_unverified", allow_unverified)
        arguments.folder("manifest_dir", manifest_dir)
        arguments.folder("report_dir", report_dir)
        if expectations is not None and not isinstance(expectations, Mapping):
            raise InvalidArgumentError(f"expectations={expectations!r} must map globs to lists of expectations")
        if formats is not None and not isinstance(formats, Mapping):
            raise InvalidArgumentError(f"formats={formats!r} must map globs to format names, e.g. {{'*.txt': 'csv'}}")
        self.source = source
        self.replicas = [replicas] if isinstance(replicas, str) else replicas
        self.source_datasets = source_datasets
        self.replica_datasets = replica_datasets
        self.operator_extra_links = replica_links(LinkKind.REPORT, self.replicas)
        self.source_conn_id = source_conn_id
        self.replica_conn_ids = replica_conn_ids
        self.level = level
        self.count_rows = count_rows
        self.expectations = dict(expectations) if expectations is not None else None
        self.sample = sample
        self.formats = dict(formats) if formats else None
        self.allow_unverified = allow_unverified
        self.workers = workers
        self.manifest_dir = manifest_dir
        self.report_dir = report_dir
        self.replication = replication
        self.retention = retention
        self._report: ValidationReport | None = None

    def _locations(self) -> tuple[Location, list[Location]]:
        from airflow_multicloud.hooks.factory import open_locations
        from airflow_multicloud.replication.engine import check_locations

        reps = rendered_uris("replicas", self.replicas)
        if not reps:
            arguments.uris("replicas", reps)  # refuses an empty list by name
        arguments.conn_ids("source_conn_id", self.source_conn_id)
        arguments.conn_ids("replica_conn_ids", self.replica_conn_ids)
        source, replicas = open_locations(rendered_uri("source", self.source), self.source_conn_id, reps,
                                          self.replica_conn_ids)  # fmt: skip
        # a replica that is the source (or inside it) would be compared with itself and always pass
        check_locations(source, replicas)
        return source, replicas

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_multicloud.validation.compare import compare_replicas

        source, replicas = self._locations()
        report = compare_replicas(
            source,
            replicas,
            level=self.level,
            workers=self.workers,
            count_rows=self.count_rows,
            formats=self.formats,
            expectations=self.expectations,
            sample=self.sample,
            allow_unverified=self.allow_unverified,
            manifest_dir=self.manifest_dir,
        )
        self._report = report
        self.log.info("%s", report.table())
        run = f"{context['dag'].dag_id}.{context['run_id']}.{self.task_id}"
        self._write_reports(report, replicas, run)
        self._record_asset_events(context, report)
        audits = self._audit_retention(replicas)
        if not report.ok:
            shown = "\n  ".join(report.first_differences(20))
            total = sum(sum(r.difference_counts.values()) for r in report.replicas)
            raise ReplicaMismatchError(
                f"{total} difference(s) between {report.source} and its replicas (reports: "
                f"{', '.join(u for r in report.replicas for u in r.reports)}); first ones:\n  {shown}"
            )
        return {**report.to_json(files=False, max_differences=50), **({"retention": audits} if audits else {})}

    def _audit_retention(self, replicas: list[Location]) -> list[dict[str, Any]]:
        """With ``retention``: every replica object must be locked at least that long (fails the task otherwise)."""
        from airflow_multicloud.replication.retention import RetentionShortError, audit_retention, parse_retention

        if self.retention is None:
            return []
        required = parse_retention(self.retention)
        audits = [audit_retention(r, required, self.workers) for r in replicas]
        for audit in audits:
            self.log.info("retention of %s: %s", audit["replica"], audit)
        bad = [a for a in audits if not a["ok"]]
        if bad:
            raise RetentionShortError(
                "replicas not retained as long as asked (retention="
                f"{self.retention!r}): "
                + "; ".join(
                    f"{a['replica']}: lock {'on' if a['object_lock'] else 'off'}, {len(a['short'])} short, "
                    f"{len(a['unprotected'])} without retention (e.g. {(a['short'] + a['unprotected'])[:3]})"
                    for a in bad
                )
            )
        return audits

    def _write_reports(self, report: ValidationReport, replicas: list[Location], run: str) -> None:
        """The whole report next to each replica: whoever looks at one replica sees how all compared."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        safe_run = "".join(c if c.isalnum() or c in "-_." else "_" for c in run)[:80]
        for loc, rep in zip(replicas, report.replicas, strict=True):
            base = f"{loc.prefix}{self.report_dir}{stamp}-{safe_run}"
            rep.reports = [loc.store.uri(base + ".json"), loc.store.uri(base + ".html")]
        for loc in replicas:
            base = f"{loc.prefix}{self.report_dir}{stamp}-{safe_run}"
            loc.store.write(base + ".json", [report.dumps().encode()], content_type="application/json")
            loc.store.write(base + ".html", [report.to_html().encode()], content_type="text/html; charset=utf-8")
            self.log.info("report: %s", loc.store.uri(base + ".html"))

    def _record_asset_events(self, context: Context, report: ValidationReport) -> None:
        copied = self.replication if isinstance(self.replication, dict) else {}
        manifests = list(copied.get("manifests") or [])
        for i, rep in enumerate(report.replicas):
            asset = matching_asset(rep.uri, self.outlets)
            if asset is None:
                continue
            replication = (
                {
                    **_destination_counts(copied, i),
                    "manifest": manifests[i] if i < len(manifests) else None,
                    "replication_run": copied.get("run_id"),
                }
                if copied
                else {}
            )
            context["outlet_events"][asset].extra = {
                **replication,
                "source": report.source,
                "replica": rep.uri,
                "level": report.level,
                "objects": rep.objects,
                "bytes": rep.bytes,
                "rows": rep.rows,
                "checksum_status": rep.checksum_status,
                "passed": rep.passed,
                "failed": rep.failed,
                "unverified": rep.unverified,
                "expectations_passed": rep.expectations_passed,
                "expectations_failed": rep.expectations_failed,
                "ok": rep.ok(report.allow_unverified),
                "report": rep.reports[0] if rep.reports else None,
            }

    def replica_file(self, kind: LinkKind, index: int) -> tuple[str, str | None] | None:
        """For the "Validation report" links: the HTML report written next to the ``index``-th replica, and that
        replica's connection id; None before a report."""
        from airflow_multicloud.hooks.factory import pair_connections

        report = self._report
        if kind is not LinkKind.REPORT or report is None or index >= len(report.replicas):
            return None
        html = next((r for r in report.replicas[index].reports if r.endswith(".html")), None)
        conns = pair_connections([r.uri for r in report.replicas], self.replica_conn_ids)
        return (html, conns[index]) if html else None

    def get_openlineage_facets_on_start(self) -> Any:
        """The rendered source and replicas, so the START event names what COMPLETE will."""
        return self.get_openlineage_facets_on_complete(None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow.providers.openlineage.extractors import OperatorLineage

        if self._report is None:
            both = [*self.source_datasets, *self.replica_datasets]
            return OperatorLineage(
                inputs=[
                    *lineage_datasets(self.source, both, output=False),
                    *lineage_datasets(self.replicas, both, output=False),
                ]
            )
        return OperatorLineage(inputs=lineage_inputs(self._report, [*self.source_datasets, *self.replica_datasets]))

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)


class RestoreDrillOperator(BaseOperator):
    """Restore one night's replica to a scratch location and prove it against that night's manifest.

    Every object recorded in the replica's newest manifests is copied to ``scratch``; the CRC64 and size of the
    restored bytes must equal the manifest's (a replica overwritten since fails, named). With ``count_rows``
    the rows of each restored data file are counted and compared with the source rows the night's validation
    recorded. Returns (XCom) the totals, the time to restore and the first failures.

    :param replica: the replica of one partition (templated).
    :param scratch: where to restore it (templated); objects there are overwritten.
    :param replica_conn_id: connection for the replica (default: the scheme's ``*_default``).
    :param scratch_conn_id: connection for the scratch location.
    :param count_rows: count rows of each restored data file.
    :param formats: glob -> format (``csv``, ``jsonl.gz``, ``parquet``...) where extensions do not tell.
    """

    template_fields: Sequence[str] = ("replica", "scratch", "replica_conn_id", "scratch_conn_id")
    ui_color = "#eafaf1"

    def __init__(
        self,
        *,
        replica: str,
        scratch: str,
        replica_conn_id: str | None = None,
        scratch_conn_id: str | None = None,
        count_rows: bool = False,
        formats: Mapping[str, str] | None = None,
        workers: int = 8,
        manifest_dir: str = DEFAULT_MANIFEST_DIR,
        report_dir: str = DEFAULT_REPORT_DIR,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.replica = replica
        self.scratch = scratch
        self.replica_conn_id = replica_conn_id
        self.scratch_conn_id = scratch_conn_id
        self.count_rows = count_rows
        self.formats = dict(formats) if formats else None
        self.workers = workers
        self.manifest_dir = manifest_dir
        self.report_dir = report_dir

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_multicloud.hooks.factory import open_location
        from airflow_multicloud.validation.drill import restore_drill

        drill = restore_drill(
            open_location(self.replica, self.replica_conn_id),
            open_location(self.scratch, self.scratch_conn_id),
            count_rows=self.count_rows,
            formats=self.formats,
            workers=self.workers,
            manifest_dir=self.manifest_dir,
            report_dir=self.report_dir,
        )
        self.log.info("%s", drill.summary())
        if not drill.ok:
            raise ReplicaMismatchError(
                f"restore drill of {drill.replica}: {len(drill.failures)} object(s) do not match the manifest "
                f"{drill.manifest}:\n  " + "\n  ".join(d.line() for d in drill.failures[:20])
            )
        return drill.to_json()


def _destination_counts(summary: dict[str, Any], i: int) -> dict[str, Any]:
    per = summary.get("per_destination") or []
    if i >= len(per):
        return {}
    return {k: per[i].get(k) for k in ("copied", "skipped", "failed", "copied_bytes")}


def lineage_inputs(report: ValidationReport, stable: Sequence[str | None]) -> list[Any]:
    """The source and every replica (named as their assets), each with data-quality metrics and the replica with
    its assertions."""
    from openlineage.client.generated.data_quality_assertions_dataset import (
        Assertion,
        DataQualityAssertionsDatasetFacet,
    )
    from openlineage.client.generated.data_quality_metrics_input_dataset import DataQualityMetricsInputDatasetFacet

    src_metrics = DataQualityMetricsInputDatasetFacet(
        columnMetrics={}, rowCount=report.rows, bytes=report.bytes, fileCount=report.objects
    )
    out = [lineage_dataset(report.source, stable, output=False, dataQualityMetrics=src_metrics)]
    for rep in report.replicas:
        metrics = DataQualityMetricsInputDatasetFacet(
            columnMetrics={}, rowCount=rep.rows, bytes=rep.bytes, fileCount=rep.objects
        )
        kinds = rep.difference_counts
        assertions = [
            Assertion(assertion="objects_match_source", success=not (kinds.get("missing") or kinds.get("extra"))),
            Assertion(assertion="sizes_match_source", success=not kinds.get("size")),
            Assertion(assertion="checksums_match_source", success=rep.checksum_status == "passed"),
        ]
        if report.row_counts:
            rows_ok = not (kinds.get("rows") or kinds.get("unreadable"))
            assertions.append(Assertion(assertion="row_counts_match_source", success=rows_ok))
        if report.expectations_run:
            assertions.append(Assertion(assertion="expectations", success=rep.expectations_failed == 0))
        quality = {"dataQualityAssertions": DataQualityAssertionsDatasetFacet(assertions=assertions)}
        out.append(lineage_dataset(rep.uri, stable, output=False, facets=quality, dataQualityMetrics=metrics))
    return out
