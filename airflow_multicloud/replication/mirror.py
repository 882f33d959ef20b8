"""The counts of a dry run, and a mirror's deletions once every copy verified."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from functools import partial

from airflow_multicloud.replication.copy import CopyOptions
from airflow_multicloud.replication.model import Location, Plan, PlanAction, RunSummary
from airflow_multicloud.replication.record import KEY_SAMPLE
from airflow_multicloud.replication.retention import retention_guard
from airflow_multicloud.replication.retry import with_retries

log = logging.getLogger(__name__)

#: deletions named in a summary (dry run or refusal) so a user can see what a mirror would remove
DELETE_SAMPLE = 10


def tally_plan(
    summary: RunSummary, destinations: Sequence[Location], plan: Plan, deletes: dict[int, list[str]]
) -> None:
    """What the plan would do, counted as a dry run reports it: per destination, with a sample of the deletions."""
    for d, dest in enumerate(destinations):
        actions: Counter[PlanAction | None] = Counter()
        copied_bytes = 0
        for e in plan.entries:
            actions[e.actions.get(d)] += 1
            copied_bytes += e.obj.size if e.actions.get(d) == PlanAction.COPY else 0
        rels = deletes.get(d, [])
        summary.per_destination.append(
            {
                "destination": dest.uri,
                "copied": actions[PlanAction.COPY],
                "skipped": actions[PlanAction.SKIP] + plan.skipped.get(d, 0),
                "failed": actions[PlanAction.INVALID_KEY],
                "conflicts": actions[PlanAction.CONFLICT],
                "copied_bytes": copied_bytes,
                "deleted": len(rels),
                "delete_sample": [dest.store.uri(dest.key(rel)) for rel in rels[:DELETE_SAMPLE]],
            }
        )
    summary.copied = plan.count("copy")
    summary.copied_bytes = sum(p["copied_bytes"] for p in summary.per_destination)
    summary.skipped = plan.count("skip")
    summary.conflicts = plan.count("conflict")
    summary.deleted = sum(len(x) for x in deletes.values())
    summary.failed, summary.failed_keys = len(summary.invalid_keys), summary.invalid_keys[:KEY_SAMPLE]


def mirror_deletes(
    destinations: Sequence[Location], deletes: dict[int, list[str]], options: CopyOptions, summary: RunSummary
) -> None:
    """Delete the destination objects absent at the source, once every copy verified; each delete is retried like
    a copy, and one that still fails stops the run (``summary.deleted`` counts those done)."""
    if summary.failed:
        log.warning("mirror: not deleting anything because %d copies failed", summary.failed)
        return
    for d, rels in deletes.items():
        dest = destinations[d]
        retained = retention_guard(dest)
        for rel in rels:
            key = dest.key(rel)
            if retained(key):
                summary.locked += 1
                continue
            with_retries(partial(dest.store.delete, key), f"delete {dest.store.uri(key)}", options)
            summary.deleted += 1
            summary.per_destination[d]["deleted"] += 1
