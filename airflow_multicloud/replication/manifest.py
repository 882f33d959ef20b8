"""JSON Lines manifests written next to each replica: what was copied or skipped, with its checksums.

A manifest lives under ``<destination prefix><manifest_dir>`` and is named so that names sort by time. The
newest manifests (back to the last one that covered the whole dataset) tell later runs and the validation step
which objects were verified, at which source version, without reading object data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from airflow_multicloud.errors import StoreError
from airflow_multicloud.replication.model import Location, ObjectResult, SourceObject

log = logging.getLogger(__name__)

DEFAULT_MANIFEST_DIR = "_multicloud/manifests/"
VERIFIED = ("copied", "skipped")


def manifest_prefix(dest: Location, manifest_dir: str = DEFAULT_MANIFEST_DIR) -> str:
    return dest.prefix + manifest_dir


def read_previous(
    dest: Location, manifest_dir: str = DEFAULT_MANIFEST_DIR, keys: Iterable[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Verified entries by relative key, newest first wins, from the newest manifests back to the last complete one.

    ``keys``: the keys under the manifest folder where the caller listed them already (the plan lists the whole
    destination prefix, manifests included), else they are listed here.
    A manifest that cannot be read is logged and ignored: it only costs a HEAD or a copy, never a wrong skip.
    """
    prefix = manifest_prefix(dest, manifest_dir)
    if keys is None:
        keys = (o.key for o in dest.store.list(prefix))
    names = sorted((k for k in keys if k.startswith(prefix) and k.endswith(".jsonl")), reverse=True)
    entries: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            lines = b"".join(dest.store.read(name)).decode("utf-8").splitlines()
            header = json.loads(lines[0])
            for line in lines[1:]:
                rec = json.loads(line)
                if rec.get("status") in VERIFIED:
                    entries.setdefault(rec["key"], rec)
        except (StoreError, ValueError, IndexError, KeyError) as exc:
            log.warning("ignoring unreadable manifest %s: %s", dest.store.uri(name), exc)
            continue
        if header.get("complete"):
            break
    return entries


def manifest_record(obj: SourceObject, result: ObjectResult) -> dict[str, Any]:
    return {
        "key": obj.rel,
        "size": obj.size,
        "crc64": result.crc64,
        "md5": result.md5,
        "source_etag": obj.etag,
        "source_last_modified": obj.last_modified.isoformat() if obj.last_modified else None,
        "dest_etag": result.dest_etag,
        "status": result.status,
        "verified_by": result.verified_by,
        "source_proof": result.source_proof,
        "dest_last_modified": result.dest_last_modified,
        **({"error": result.error} if result.error else {}),
    }


def write_manifest(
    dest: Location,
    run_id: str,
    header: dict[str, Any],
    records: Iterable[dict[str, Any]],
    manifest_dir: str = DEFAULT_MANIFEST_DIR,
) -> str:
    """Write one manifest and return its URI."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    safe_run = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)[:80]
    key = f"{manifest_prefix(dest, manifest_dir)}{stamp}-{safe_run}.jsonl"
    lines = [json.dumps({"type": "header", "run_id": run_id, **header}, sort_keys=True)]
    lines += [json.dumps({"type": "object", **r}, sort_keys=True) for r in records]
    body = ("\n".join(lines) + "\n").encode()
    dest.store.write(key, [body], content_type="application/x-ndjson")
    return dest.store.uri(key)
