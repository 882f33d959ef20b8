"""Open a dataset URI with an Airflow connection: the one place that maps schemes to hooks."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from airflow_multicloud.errors import InvalidURIError, MulticloudError
from airflow_multicloud.hooks.env_connections import EnvConnection, from_environment, secrets_backend_configured
from airflow_multicloud.replication.model import Location
from airflow_multicloud.schemes import SCHEMES, Scheme
from airflow_multicloud.stores.base import ObjectInfo, ObjectStore, TransferConfig
from airflow_multicloud.stores.local import LocalStore
from airflow_multicloud.uri import folder_prefix, parse_uri


class MissingConnectionError(MulticloudError, ValueError):
    """The Airflow connection named for a dataset does not exist."""


def require_connection(conn_id: str, scheme: str) -> None:
    """Fail early, naming the connection and how to define it, instead of falling back to other credentials."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise MissingConnectionError(_missing(conn_id, scheme)) from None


def _missing(conn_id: str, scheme: str) -> str:
    return (
        f"Airflow connection {conn_id!r} (for {scheme}://) is not defined: create it under Admin > Connections, "
        f"or set the environment variable AIRFLOW_CONN_{conn_id.upper()}"
    )


def _open(
    scheme: str, bucket: str, conn_id: str | None, transfer: TransferConfig | None, env_connections: bool = False
) -> tuple[ObjectStore, Any]:
    """The store and the hook that built it (None for local files, and for stores built without Airflow)."""
    spec = SCHEMES[scheme]
    if not spec.opener:
        return LocalStore(bucket, label="local files", transfer=transfer), None
    conn = conn_id or spec.default_conn_id
    if env_connections and spec.env_opener:
        store = _open_from_environment(spec, conn, bucket, transfer)
        if store is not None:
            return store, None
    if not (spec.connection_optional and conn == spec.default_conn_id):
        require_connection(conn, scheme)
    module, _, function = spec.opener.partition(":")
    opener: Callable[[str, str, TransferConfig | None], tuple[ObjectStore, Any]]
    opener = getattr(importlib.import_module(module), function)
    return opener(conn, bucket, transfer)


def _open_from_environment(
    spec: Scheme, conn_id: str, bucket: str, transfer: TransferConfig | None
) -> ObjectStore | None:
    """A store from an ``AIRFLOW_CONN_*`` variable, read without importing Airflow; None when Airflow must be asked
    (a secrets backend is configured, or the connection needs the amazon provider's session factory)."""
    if secrets_backend_configured():
        return None
    conn = from_environment(conn_id)
    if conn is None and not (spec.connection_optional and conn_id == spec.default_conn_id):
        raise MissingConnectionError(_missing(conn_id, spec.name))
    module, _, function = spec.env_opener.partition(":")
    opener: Callable[[EnvConnection | None, str, str, TransferConfig | None], ObjectStore | None]
    opener = getattr(importlib.import_module(module), function)
    return opener(conn, conn_id, bucket, transfer)


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
    env_connections: bool = False,
) -> Location:
    """Parse ``uri`` and open it. A ``file://`` folder is the store's root; ``create``: a missing one is made when
    the first object is written to it.

    The prefix names a folder: ``oss://b/data`` opens ``oss://b/data/`` (:class:`Location` adds the ``/``).
    ``lineage="input"`` or ``"output"`` also reports the dataset, by that folder URI, as hook-level lineage.
    ``env_connections``: read connections from ``AIRFLOW_CONN_*`` without importing Airflow when no secrets backend
    is configured (what Airflow itself would find outside a task): the CLI's fast start. Never inside a task, whose
    connections come from the API server.
    """
    parsed = parse_uri(uri)
    if parsed.scheme == "file":
        root = "/" + parsed.prefix.rstrip("/")
        return Location(_local_folder(root, create, transfer), "")
    prefix = folder_prefix(parsed.prefix, uri)  # a bad prefix fails before any connection is looked up
    store, hook = _open(parsed.scheme, parsed.bucket, conn_id, transfer, env_connections)
    loc = Location(store, prefix)
    if lineage and hook is not None:
        _report_lineage(hook, loc.uri, lineage)
    return loc


def open_locations(
    source: str,
    source_conn: str | None,
    targets: Sequence[str],
    target_conns: str | Sequence[str | None] | None,
    *,
    transfer: TransferConfig | None = None,
    create: bool = False,
    lineage: bool = False,
    env_connections: bool = False,
) -> tuple[Location, list[Location]]:
    """A source and its destinations (or replicas), each opened with its connection (:func:`pair_connections`):
    what the operators and CLI commands all start with. ``create``: a missing ``file://`` target folder is made on
    the first write; ``lineage``: report the source as input and the targets as outputs. The rest as
    :func:`open_location`."""
    conns = pair_connections(targets, target_conns)  # a wrong count fails before any connection is looked up
    opened = open_location(
        source, source_conn, transfer=transfer, lineage="input" if lineage else None, env_connections=env_connections
    )
    return opened, [
        open_location(
            t,
            c,
            transfer=transfer,
            create=create,
            lineage="output" if lineage else None,
            env_connections=env_connections,
        )
        for t, c in zip(targets, conns, strict=True)
    ]


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
