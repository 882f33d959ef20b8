"""Results of a run as they arrive: counted into the summary (a bounded sample of keys) and streamed into one
manifest per destination, so nothing is held per object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_multicloud.replication.manifest import DELETED, Kind, ManifestWriter, manifest_key, manifest_record
from airflow_multicloud.replication.model import Location, ObjectResult, Plan, PlanAction, PlanEntry, RunSummary

#: keys named in a summary's failed_keys and conflict_keys; the counts say how many there were in all
KEY_SAMPLE = 100


def note(keys: list[str], key: str) -> None:
    """Name ``key`` in a summary's sample while the sample has room."""
    if len(keys) < KEY_SAMPLE:
        keys.append(key)


class Recorder:
    """One manifest writer and one tally per destination, fed entry by entry (from one thread at a time)."""

    def __init__(
        self,
        source: Location,
        destinations: Sequence[Location],
        summary: RunSummary,
        header: dict[str, Any],
        manifest_dir: str,
    ) -> None:
        self.destinations, self.summary = destinations, summary
        self.writers: list[ManifestWriter] = []
        for dest in destinations:
            key = manifest_key(dest, summary.run_id, Kind.RUN, manifest_dir)
            head = {"run_id": summary.run_id, "kind": Kind.RUN.value, "source": source.uri, "destination": dest.uri}
            self.writers.append(ManifestWriter(dest, key, {**head, **header}))
        for dest in destinations:
            summary.per_destination.append(
                {
                    "destination": dest.uri,
                    "copied": 0,
                    "skipped": 0,
                    "failed": 0,
                    "conflicts": 0,
                    "copied_bytes": 0,
                    "deleted": 0,
                }
            )

    def held_skips(self, plan: Plan) -> None:
        """Count the skips the plan kept no entry for (an earlier verified record backs them): once it is complete."""
        for d, held in plan.skipped.items():
            self.summary.skipped += held
            self.summary.per_destination[d]["skipped"] += held

    def add(self, entry: PlanEntry, copied: list[ObjectResult]) -> None:
        """Record one entry: its copies' results, and what the plan decided for its other destinations."""
        done = {r.destination: r for r in copied}
        for d, action in entry.actions.items():
            if action == PlanAction.COPY:
                result = done[d]
            elif action == PlanAction.INVALID_KEY:
                why = entry.reasons.get(d, "invalid key")
                result = ObjectResult(entry.obj.rel, d, "failed", entry.obj.size, error=why)
            else:
                prev = entry.previous.get(d, {})
                result = unchanged_result(entry, d, action, prev)
            self._count(d, entry, result)
            # a skip resting on an earlier manifest record is in the chain already (docs/manifests.md)
            if result.status != "skipped" or "previous-manifest" not in result.verified_by:
                self.writers[d].add(manifest_record(entry.obj, result))

    def _count(self, d: int, entry: PlanEntry, r: ObjectResult) -> None:
        summary, dest = self.summary, self.destinations[d]
        per = summary.per_destination[d]
        uri = dest.store.uri(dest.key(entry.obj.rel))
        if r.status == "copied":
            summary.copied += 1
            summary.copied_bytes += r.size
            per["copied"] += 1
            per["copied_bytes"] += r.size
        elif r.status == "skipped":
            summary.skipped += 1
            per["skipped"] += 1
        elif r.status == "conflict":
            summary.conflicts += 1
            per["conflicts"] += 1
            note(summary.conflict_keys, uri)
        else:
            summary.failed += 1
            per["failed"] += 1
            note(summary.failed_keys, f"{uri} ({r.error})")

    def deleting(self, d: int, rels: Sequence[str]) -> None:
        """The deletions a mirror is about to make end the older records of those keys."""
        for rel in rels:
            self.writers[d].add({"key": rel, "status": DELETED})

    def close(self) -> None:
        for w in self.writers:
            w.close()


def unchanged_result(entry: PlanEntry, d: int, action: str, prev: dict[str, Any]) -> ObjectResult:
    """A skipped or conflicting object: a skip rests on the earlier verified copy, so its record carries that
    copy's checksums, source proof and replica version forward (validation counts a record only with them)."""
    held: dict[str, Any] = {"crc64": prev.get("crc64"), "md5": prev.get("md5"), "dest_etag": prev.get("dest_etag")}
    if action != PlanAction.SKIP:
        return ObjectResult(entry.obj.rel, d, "conflict", entry.obj.size, **held)
    proofs = [v for v in prev.get("verified_by") or () if isinstance(v, str) and v.startswith("source-")]
    proof = prev.get("source_proof") or (proofs[0] if proofs else None)
    return ObjectResult(
        entry.obj.rel,
        d,
        "skipped",
        entry.obj.size,
        **held,
        verified_by=[proof, "previous-manifest"] if proof else ["previous-manifest" if prev else "metadata"],
        source_proof=proof,
        dest_last_modified=prev.get("dest_last_modified"),
    )
