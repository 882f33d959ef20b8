"""Write-once retention as the stores see it: what to set on upload and what a bucket or object reports.

No SDK here: each store turns a :class:`RetentionPolicy` into its own headers and its answers into
:class:`RetentionStatus` / :class:`ObjectRetention`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class RetentionMode(StrEnum):
    """S3's two modes; COS and OSS WORM only know COMPLIANCE (nobody, not even the owner, may shorten it)."""

    GOVERNANCE = "GOVERNANCE"
    COMPLIANCE = "COMPLIANCE"


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep every replica written by this run until ``until`` (UTC), in ``mode``."""

    until: datetime
    mode: RetentionMode = RetentionMode.COMPLIANCE

    def days_left(self, now: datetime | None = None) -> float:
        return (self.until - (now or datetime.now(UTC))) / timedelta(days=1)


@dataclass(frozen=True)
class RetentionStatus:
    """Who can delete what is written to a bucket, as the bucket reports it.

    :param enabled: object lock / WORM is on (the bucket can hold retention at all).
    :param level: ``object`` (S3, COS: each object carries its date) or ``bucket`` (OSS WORM: one period for all).
    :param mode: the bucket's default or WORM mode, if any.
    :param days: the bucket's default retention or WORM period in days, if any.
    :param locked: a bucket-level policy is locked (OSS WORM ``Locked``; ``InProgress`` can still be aborted).
    :param versioned: overwrites create new versions instead of replacing the object.
    :param remedy: what to enable when ``enabled`` is False.
    """

    enabled: bool
    level: str = "object"
    mode: str | None = None
    days: int | None = None
    locked: bool = False
    versioned: bool = False
    remedy: str = ""

    def can_hold(self, policy: RetentionPolicy, now: datetime | None = None) -> bool:
        """Whether objects written now will be retained at least until ``policy.until``."""
        if not self.enabled:
            return False
        if self.level == "bucket":
            return self.locked and self.days is not None and self.days >= policy.days_left(now)
        return True

    def to_json(self) -> dict[str, object]:
        return {
            "object_lock": self.enabled,
            "level": self.level,
            "mode": self.mode,
            "days": self.days,
            "locked": self.locked,
            "versioned": self.versioned,
        }


@dataclass(frozen=True)
class ObjectRetention:
    """The retention one object reports (HEAD or GET ?retention); ``until`` None means none."""

    mode: str | None
    until: datetime | None

    def active(self, now: datetime | None = None) -> bool:
        return self.until is not None and self.until > (now or datetime.now(UTC))

    def days_left(self, now: datetime | None = None) -> float:
        if self.until is None:
            return 0.0
        return max(0.0, (self.until - (now or datetime.now(UTC))) / timedelta(days=1))


NO_RETENTION = ObjectRetention(None, None)
