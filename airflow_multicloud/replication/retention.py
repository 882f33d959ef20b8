"""Write-once replicas: the retention a run asks for, whether each destination can hold it, and the modes that
respect locks (mirror never deletes a retained object; an overwrite refused by a lock is a conflict, not a failure).

No SDK here: the stores report :class:`~airflow_multicloud.stores.retention.RetentionStatus` and retention per
object, and set the retention on upload once ``store.retention`` is given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from airflow_multicloud.errors import MulticloudError, ObjectNotFoundError, RetentionLockedError
from airflow_multicloud.replication.model import Location, ObjectResult, PlanEntry, RunSummary, parse_choice
from airflow_multicloud.stores.retention import RetentionMode, RetentionPolicy, RetentionStatus

log = logging.getLogger(__name__)


class RetentionUnavailableError(MulticloudError, ValueError):
    """``require_immutable`` and a destination that cannot hold the retention asked for."""


def parse_retention(
    value: int | str | date | datetime | None, mode: str = "COMPLIANCE", now: datetime | None = None
) -> RetentionPolicy | None:
    """``retention=`` as days from now (int or digits) or a date/datetime (ISO string); None when not asked."""
    if value is None or value == "":
        return None
    now = now or datetime.now(UTC)
    parsed_mode = parse_choice(RetentionMode, str(mode).upper(), "retention_mode")
    until: datetime
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        days = int(value)
        if days < 1:
            raise ValueError(f"retention={value!r}: give at least 1 day, or a date in the future")
        until = now + timedelta(days=days)
    else:
        try:
            found = value if isinstance(value, date) else datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError(
                f"retention={value!r} is neither a number of days nor an ISO date (e.g. 30 or 2027-06-30)"
            ) from None
        until = found if isinstance(found, datetime) else datetime.combine(found, time(), UTC)
        until = until if until.tzinfo else until.replace(tzinfo=UTC)
    if until <= now:
        raise ValueError(f"retention={value!r} ends {until:%Y-%m-%d %H:%M} UTC, which is not in the future")
    return RetentionPolicy(until.astimezone(UTC).replace(microsecond=0), parsed_mode)


def who_can_delete(status: RetentionStatus, policy: RetentionPolicy | None) -> str:
    """One line a data engineer reads in the plan: who could delete a replica written by this run."""
    if not status.enabled:
        return "anyone whose keys can write the bucket (no object lock / WORM)"
    if status.level == "bucket":
        state = "locked" if status.locked else "not locked yet: its owner can still remove it"
        return f"nobody for {status.days} days after each write (bucket WORM policy, {state})"
    if policy is None and not status.days:
        return "anyone whose keys can write the bucket: object lock is on but this run sets no retention"
    mode = policy.mode.value if policy else (status.mode or "COMPLIANCE")
    until = f"until {policy.until:%Y-%m-%d}" if policy else f"for {status.days} days (bucket default)"
    if mode == RetentionMode.GOVERNANCE.value:
        return f"only users allowed to bypass governance retention, {until}"
    return f"nobody, {until} (COMPLIANCE)"


def prepare_destinations(
    destinations: Sequence[Location], policy: RetentionPolicy | None, require_immutable: bool
) -> list[dict[str, Any]]:
    """Ask every destination what it can hold, refuse (``require_immutable``) or warn, and give each store the
    retention to set on upload. Returns the per-destination report the plan and the summary carry."""
    report: list[dict[str, Any]] = []
    missing: list[str] = []
    for dest in destinations:
        status = dest.store.retention_status()
        can_hold = policy is not None and status.can_hold(policy)
        if require_immutable and not (can_hold if policy is not None else status.enabled):
            asked = f"until {policy.until:%Y-%m-%d}" if policy else "any retention"
            reason = status.remedy if not status.enabled else f"its WORM policy keeps {status.days} days"
            if status.enabled and status.level == "bucket" and not status.locked:
                reason = "its WORM policy is not locked yet (CompleteBucketWorm)"
            missing.append(f"{dest.uri} cannot hold {asked}: {reason}")
        held_mode = status.mode
        if policy is not None and status.enabled and status.level == "object":
            # a bucket default at least as long and as strict already covers it (COS refuses to shorten a date);
            # a GOVERNANCE default does not cover a COMPLIANCE policy
            covered = (
                status.days is not None
                and status.days >= policy.days_left()
                and status.mode in (RetentionMode.COMPLIANCE.value, policy.mode.value)
            )
            dest.store.retention = None if covered else policy
            held_mode = status.mode if covered else policy.mode.value
        elif policy is not None and not can_hold:
            log.warning("%s cannot hold retention until %s: %s", dest.uri, policy.until.date(), status.remedy)
        report.append(
            {
                "destination": dest.uri,
                **status.to_json(),
                "mode": held_mode,  # what the replicas written by this run are held in, not only the bucket default
                "retain_until": policy.until.isoformat() if policy and can_hold else None,
                "who_can_delete": who_can_delete(status, policy if can_hold else None),
            }
        )
    if missing:
        raise RetentionUnavailableError(
            "require_immutable=True and not every destination can keep its replicas write-once; nothing was "
            "copied:\n  " + "\n  ".join(missing)
        )
    return report


def locked_as_conflicts(copied: Sequence[tuple[PlanEntry, list[ObjectResult]]], summary: RunSummary) -> None:
    """An overwrite a retention lock refused left the replica as it was: report it as a conflict, not a failure."""
    for _, results in copied:
        for result in results:
            if result.status == "failed" and (result.error or "").startswith(RetentionLockedError.__name__):
                result.status = "conflict"
                summary.locked += 1


def retention_guard(dest: Location) -> Callable[[str], bool]:
    """For mirror's deletes on one destination: whether a key is retained now, so it is counted, never deleted
    (on S3 a delete would only hide it behind a delete marker; on COS and OSS it would be refused)."""
    if not dest.store.retention_status().enabled:
        return lambda key: False

    def retained(key: str) -> bool:
        try:
            return dest.store.object_retention(key).active()
        except ObjectNotFoundError:
            return False

    return retained


def retention_extra(lock: dict[str, Any] | None, pair: dict[str, Any] | None, cost: dict[str, Any]) -> dict[str, Any]:
    """What an asset event of one replica carries about who can delete it and what writing it cost."""
    extra: dict[str, Any] = {}
    if lock is not None:
        extra["retention"] = {
            k: lock[k] for k in ("object_lock", "level", "mode", "days", "locked", "retain_until", "who_can_delete")
        }
    if pair is not None:
        extra["estimated_cost"] = {
            "currency": cost.get("currency"),
            "pricing_as_of": cost.get("pricing_as_of"),
            "egress_bytes": pair["egress_bytes"],
            "requests": sum(pair["requests"].values()),
            "run_total": cost.get("total_cost"),
        }
    return extra


def describe_protection(summary: RunSummary) -> str:
    """The dry run's and the report's lines on who can delete each replica and what the run costs."""
    from airflow_multicloud.replication.cost import describe

    lines = [f"{r['destination']}: deletable by {r['who_can_delete']}" for r in summary.retention]
    if summary.locked:
        lines.append(f"{summary.locked} objects kept by a retention lock (not deleted, not overwritten)")
    if summary.cost:
        lines.append(describe(summary.cost))
    return "\n".join(lines)


#: ``retention=N`` days checked a while after the copy that set it: a replica a day short is not flagged
SLACK = timedelta(days=1)


class RetentionShortError(MulticloudError):
    """Replicas whose retention ends before the policy says (or that carry none)."""


def audit_retention(loc: Location, required: RetentionPolicy | None, workers: int = 8) -> dict[str, Any]:
    """Retention of every object of a replica as the cloud reports it (one HEAD or GET ?retention per object on
    S3 and COS; OSS from the bucket's WORM period); ``short`` are the objects retained less than ``required``,
    with :data:`SLACK` of grace for the time between the copy that set the date and this check."""
    from concurrent.futures import ThreadPoolExecutor

    from airflow_multicloud.replication.plan import list_dataset

    status = loc.store.retention_status()
    keys = [info.key for info in list_dataset(loc)] if status.enabled else []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="retention") as pool:
        held = list(pool.map(loc.store.object_retention, keys))
    floor = required.until - SLACK if required is not None else None
    short = [k for k, h in zip(keys, held, strict=True) if floor and h.until and h.until < floor]
    unprotected = [k for k, h in zip(keys, held, strict=True) if not h.active()]
    days = [h.days_left() for h in held if h.active()]
    return {
        "replica": loc.uri,
        **status.to_json(),
        "objects": len(keys),
        "retained": len(days),
        "min_days_left": round(min(days), 2) if days else None,
        "required_until": required.until.isoformat() if required else None,
        "short": short[:50],
        "unprotected": unprotected[:50],
        "ok": status.enabled and not short and not unprotected,
    }
