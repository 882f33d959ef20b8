"""Copies that start before the listing ends: the plan's merge runs on a thread of its own and hands each entry to
the copy workers as it is decided, through a bounded queue, while the entries are also spooled for what the summary
counts once the listing is over (cost, invalid keys, the plan's counts)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from airflow_multicloud.errors import MulticloudError
from airflow_multicloud.replication.merge import ahead
from airflow_multicloud.replication.model import Location, Mode, Plan, PlanEntry
from airflow_multicloud.replication.plan import plan_entries
from airflow_multicloud.replication.spool import EntrySpool

if TYPE_CHECKING:
    from airflow_multicloud.replication.engine import ReplicationOptions

#: entries decided ahead of the copies, and handed over at once: enough to keep every worker fed between two
#: listing pages, bounded whatever the number of objects
DEPTH = 1024
BATCH = 16


class PlanningError(MulticloudError):
    """Planning failed while copies were under way; the planning error is the ``__cause__``."""


def streams(options: ReplicationOptions) -> bool:
    """Whether a run of these options may copy while it still lists. Not when something needs the whole plan
    before the first write: a mirror refuses (``max_delete``) before copying anything when it would delete too
    much, and so needs every extra first; a cost budget refuses before copying anything, on the whole plan's
    estimate; a dry run writes nothing, so there is nothing to start early."""
    return options.mode is Mode.COPY and options.max_cost is None and not options.dry_run


def planned_entries(
    source: Location, destinations: Sequence[Location], options: ReplicationOptions
) -> tuple[Plan, Iterator[PlanEntry]]:
    """A plan that fills as the returned entries are consumed (complete when they end), and the entries decided
    so far, read ahead on the merge's own thread."""
    plan = Plan(EntrySpool(), objects=0, bytes=0)
    merge = plan_entries(
        source,
        destinations,
        plan,
        options.filters,
        options.overwrite,
        options.manifest_dir,
        list_workers=options.list_workers,
    )

    def spooled() -> Iterator[PlanEntry]:
        try:
            for entry in merge:
                plan.entries.append(entry)
                yield entry
        except Exception as exc:
            raise PlanningError(f"planning {source.uri} stopped: {exc}") from exc

    return plan, ahead(spooled(), f"plan {source.uri}", depth=DEPTH, batch=BATCH)


class PlannedKeys:
    """Which of some relative keys a plan's entries name, found in one pass over them (the entries may be a spool
    of millions: nothing is kept but the keys asked about). Without entries (a run that copies while it lists),
    none is known: each unfinished upload is then judged by a HEAD of its source."""

    def __init__(self, entries: Iterable[PlanEntry] | None) -> None:
        self._entries = entries

    def __call__(self, rels: set[str]) -> set[str]:
        if not rels or self._entries is None:
            return set()
        return {e.obj.rel for e in self._entries if e.obj.rel in rels}
