"""Extra links on a task instance's page: each replica's manifest (replication) and HTML report (validation).

A link opens the object's folder in the cloud's web console (S3, COS, OSS) or, for ``file://``, the file: a
console link needs the reader's own login, expires never and carries no credential, so it can sit in XCom where
every UI user sees it (a presigned URL there would hand out read access to whoever opens the page).
Airflow computes each link in the worker when the task ends and stores it in XCom under the link's key.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow.sdk import BaseOperatorLink

from airflow_multicloud.uri import parse_uri

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class LinkKind(StrEnum):
    MANIFEST = "manifest"
    REPORT = "report"


_TITLES = {LinkKind.MANIFEST: "Manifest", LinkKind.REPORT: "Validation report"}


class ReplicaFileLink(BaseOperatorLink):
    """The ``index``-th replica's manifest or report; the operator says which object that is once it ran
    (``replica_file(kind, index)`` returns its URI and connection id, or None)."""

    def __init__(self, kind: LinkKind, index: int, label: str) -> None:
        self.kind, self.index, self.label = kind, index, label

    @property
    def name(self) -> str:
        return self.label

    @property
    def xcom_key(self) -> str:
        return f"_link_multicloud_{self.kind}_{self.index}"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        found = operator.replica_file(self.kind, self.index) if hasattr(operator, "replica_file") else None
        return console_url(*found) if found else ""


class ManifestLink(ReplicaFileLink):
    """Registered in the provider info; one per destination is made by :func:`replica_links`."""

    def __init__(self, index: int = 0, label: str = _TITLES[LinkKind.MANIFEST]) -> None:
        super().__init__(LinkKind.MANIFEST, index, label)


class ValidationReportLink(ReplicaFileLink):
    """Registered in the provider info; one per replica is made by :func:`replica_links`."""

    def __init__(self, index: int = 0, label: str = _TITLES[LinkKind.REPORT]) -> None:
        super().__init__(LinkKind.REPORT, index, label)


def replica_links(kind: LinkKind, replicas: Any) -> list[ReplicaFileLink]:
    """One link per replica the DAG file lists ("Manifest (cos)", "Manifest (oss)"); one for the first replica
    when an XComArg gives the list."""
    cls = ManifestLink if kind is LinkKind.MANIFEST else ValidationReportLink
    title = _TITLES[kind]
    if not isinstance(replicas, list | tuple):
        return [cls(0, title)]
    schemes = [_scheme(r) for r in replicas]
    labels = [f"{title} ({s})" if s else f"{title} {i + 1}" for i, s in enumerate(schemes)]
    labels = [f"{label} #{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]
    return [cls(i, label) for i, label in enumerate(labels)]


def _scheme(uri: object) -> str | None:
    if not isinstance(uri, str) or "://" not in uri.split("{", 1)[0]:
        return None
    return uri.split("://", 1)[0].lower()


def console_url(uri: str, conn_id: str | None) -> str:
    """The web console page of the folder holding ``uri`` (the file itself for ``file://``)."""
    parsed = parse_uri(uri)
    folder = parsed.prefix[: parsed.prefix.rfind("/") + 1]
    if parsed.scheme == "file":
        return f"file:///{quote(parsed.prefix)}"
    if parsed.scheme == "s3":
        return f"https://s3.console.aws.amazon.com/s3/buckets/{parsed.bucket}?" + urlencode({"prefix": folder})
    if parsed.scheme == "cos":
        from airflow_multicloud.hooks.cos import CosHook

        region = CosHook(conn_id or CosHook.default_conn_name).region
        query = urlencode({"bucket": parsed.bucket, "region": region, "path": "/" + folder})
        return f"https://console.cloud.tencent.com/cos/bucket?{query}"
    from airflow_multicloud.hooks.oss import OssHook

    oss_region = OssHook(conn_id or OssHook.default_conn_name).get_settings().region
    if oss_region is None:  # a v1 connection to an endpoint that names no region: the console's bucket list
        return "https://oss.console.aliyun.com/bucket"
    return f"https://oss.console.aliyun.com/bucket/oss-{oss_region}/{parsed.bucket}/object?" + urlencode(
        {"path": folder}
    )
