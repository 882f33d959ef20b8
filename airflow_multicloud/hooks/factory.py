"""Open a dataset URI with an Airflow connection: the one place that maps schemes to hooks."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from airflow_multicloud.errors import InvalidURIError, MulticloudError
from airflow_multicloud.replication.model import Location
from airflow_multicloud.stores.base import ObjectInfo, ObjectStore, TransferConfig
from airflow_multicloud.stores.local import LocalStore
from airflow_multicloud.uri import parse_uri

DEFAULT_CONN_IDS = {"s3": "aws_default", "cos": "cos_default", "oss": "oss_default", "file": ""}


class MissingConnectionError(MulticloudError, ValueError):
    """The Airflow connection named for a dataset does not exist."""


def require_connection(conn_id: str, scheme: str) -> None:
    """Fail early, naming the connection and how to define it, instead of falling back to other credentials."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise MissingConnectionError(
            f"Airflow connection {conn_id!r} (for {scheme}://) is not defined: create it under Admin > Connections, "
            f"or set the environment variable AIRFLOW_CONN_{conn_id.upper()}"
        ) from None


def _open(scheme: str, bucket: str, conn_id: str | None, transfer: TransferConfig | None) -> tuple[ObjectStore, Any]:
    """The store and the hook that built it (None for local files)."""
    conn = conn_id or DEFAULT_CONN_IDS[scheme]
    if scheme != "file" and not (scheme == "s3" and conn == "aws_default"):
        require_connection(conn, scheme)
    if scheme == "s3":
        from airflow_multicloud.hooks.s3 import make_s3_hook, s3_store_from_connection

        s3_hook = make_s3_hook(conn)
        return s3_store_from_connection(conn, bucket, transfer=transfer, hook=s3_hook), s3_hook
    if scheme == "cos":
        from airflow_multicloud.hooks.cos import CosHook

        cos_hook = CosHook(cos_conn_id=conn)
        return cos_hook.get_store(bucket, transfer=transfer), cos_hook
    if scheme == "oss":
        from airflow_multicloud.hooks.oss import OssHook

        oss_hook = OssHook(oss_conn_id=conn)
        return oss_hook.get_store(bucket, transfer=transfer), oss_hook
    return LocalStore(bucket, label="local files", transfer=transfer), None


def open_store(scheme: str, bucket: str, conn_id: str | None, transfer: TransferConfig | None = None) -> ObjectStore:
    """A store for one bucket, with credentials from the Airflow connection ``conn_id`` (scheme default if None).

    ``aws_default`` alone may be absent: then boto3 finds credentials the usual way (instance role, environment),
    as the amazon provider does.
    """
    return _open(scheme, bucket, conn_id, transfer)[0]


def _report_lineage(hook: Any, uri: str, role: str) -> None:
    """Hook-level lineage: Airflow (and OpenLineage) learn which dataset each hook read or wrote."""
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    collector = get_hook_lineage_collector()
    add = collector.add_input_asset if role == "input" else collector.add_output_asset
    add(context=hook, uri=str(parse_uri(uri)))


class _FolderMadeOnFirstWrite(LocalStore):
    """A destination folder that may not exist yet: it lists as empty and is made by the first write, so a run
    refused for bad input leaves no empty folder behind (least of all inside the source it refused to write into)."""

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return super().list(prefix) if os.path.lexists(self.root) else iter(())

    def _check_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        super()._check_root()


def _local_folder(root: str, create: bool, transfer: TransferConfig | None) -> ObjectStore:
    """A ``file://`` dataset's folder; with ``create`` it may be missing, if it can be made where it is named."""
    if not create:
        return LocalStore(root, label="local files", transfer=transfer)
    existing = root
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "the destination" if existing == root else f"{existing!r}, on the way to the destination,"
        raise InvalidURIError(f"file://{root}/: {what} is a file, not a folder: name a folder for the replica")
    if existing != root and not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidURIError(f"file://{root}/: cannot create the folder, {existing!r} is not writable")

    return _FolderMadeOnFirstWrite(root, label="local files", transfer=transfer)


def open_location(
    uri: str,
    conn_id: str | None = None,
    *,
    transfer: TransferConfig | None = None,
    create: bool = False,
    lineage: str | None = None,
) -> Location:
    """Parse ``uri`` and open it. A ``file://`` folder is the store's root; ``create``: a missing one is made when
    the first object is written to it.

    ``lineage="input"`` or ``"output"`` also reports the dataset as hook-level lineage.
    """
    parsed = parse_uri(uri)
    if parsed.scheme == "file":
        root = "/" + parsed.prefix.rstrip("/")
        return Location(_local_folder(root, create, transfer), "")
    store, hook = _open(parsed.scheme, parsed.bucket, conn_id, transfer)
    if lineage and hook is not None:
        _report_lineage(hook, uri, lineage)
    return Location(store, parsed.prefix)


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """A templated argument that takes one URI (or id) or a list of them, as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def pair_connections(destinations: Sequence[str], conn_ids: str | Sequence[str | None] | None) -> list[str | None]:
    """One connection id per destination from none (scheme defaults), one (for all) or one each; a ``None`` in the
    list means that destination's scheme default."""
    given: list[str | None] = [conn_ids] if isinstance(conn_ids, str) else list(conn_ids or [])
    n = len(destinations)
    if len(given) not in (0, 1, n):
        raise ValueError(
            f"{len(given)} destination connection ids for {n} destinations: give one for all, or one for each"
        )
    if not given:
        return [None] * n
    return given * n if len(given) == 1 else given
