"""Manifest retention: every so often the chain of run manifests is merged into one key-sorted consolidated
manifest, and what it covers is pruned but for the newest few run manifests (docs/manifests.md)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from airflow_multicloud import arguments
from airflow_multicloud.errors import StoreError
from airflow_multicloud.replication.manifest import (
    DEFAULT_MANIFEST_DIR,
    SUFFIX,
    Kind,
    ManifestWriter,
    chain,
    current_records,
    is_consolidated,
    is_manifest,
    is_tombstone,
    manifest_key,
    manifest_prefix,
    remove_quietly,
)
from airflow_multicloud.replication.model import Location

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ManifestRetention:
    """How many manifests a replica keeps.

    :param keep: run manifests kept besides the consolidated one (the newest ones: what the last runs did).
    :param consolidate_every: run manifests written after the consolidated one before they are merged into a new
        one; a rerun reads the consolidated manifest and at most this many after it.
    """

    keep: int = 10
    consolidate_every: int = 10

    def __post_init__(self) -> None:
        arguments.whole("manifest_keep", self.keep)
        arguments.whole("consolidate_every", self.consolidate_every, 1)


def maintain(
    dest: Location,
    run_id: str,
    retention: ManifestRetention,
    manifest_dir: str = DEFAULT_MANIFEST_DIR,
    names: list[str] | None = None,
) -> str | None:
    """Consolidate the chain when it is due, then prune; return the consolidated manifest's URI if one was
    written. Housekeeping only: a failure is logged (a longer chain costs reading time, never a wrong skip).

    ``names``: the manifest keys there, where the caller knows them (the run's plan listed them), else listed.
    """
    store = dest.store
    try:
        if names is None:
            names = [o.key for o in store.list(manifest_prefix(dest, manifest_dir)) if is_manifest(o.key)]
        base, newer, covered = chain(store, names)
        if not newer or (base is not None and len(newer) < retention.consolidate_every):
            return None
        runs = sorted((n for n in names if not is_consolidated(n)), reverse=True)
        kept = set(runs[: retention.keep])
        old = [n for n in names if n not in kept and (is_consolidated(n) or n in newer or n in covered or _legacy(n))]
        # what stays listed must stay covered, or a later reader would take it for news
        covers = [n for n in runs if n in kept and (n in newer or n in covered)]
        key = consolidate(dest, run_id, base, newer, covers, manifest_dir)
    except (StoreError, ValueError) as exc:
        log.warning("manifests of %s not consolidated: %s", dest.uri, exc)
        return None
    removed = remove_quietly(store, old, lambda _: "covered by the consolidated manifest")
    log.info("consolidated %d manifests of %s into %s; %d pruned", len(newer), dest.uri, store.uri(key), removed)
    return store.uri(key)


def consolidate(
    dest: Location, run_id: str, base: str | None, newer: list[str], covers: list[str], manifest_dir: str
) -> str:
    """Write one key-sorted manifest holding the current record of every key in ``base`` and ``newer``;
    ``covers`` names the run manifests it stands for that are kept."""
    header = {"kind": Kind.CONSOLIDATED.value, "destination": dest.uri, "complete": True, "covers": covers}
    writer = ManifestWriter(dest, manifest_key(dest, run_id, Kind.CONSOLIDATED, manifest_dir), header)
    try:
        for _, line in current_records(dest.store, base, newer, strict=True):
            if not is_tombstone(line):
                writer.add_line(line.encode() + b"\n")
        writer.upload()
    finally:
        writer.close()
    return writer.key


def _legacy(name: str) -> bool:
    """An older-format manifest: a consolidation supersedes every one of them."""
    return not name.endswith(SUFFIX)
