"""Unfinished multipart uploads a run finds under its destinations: which are left over, reported and aborted.

A copy keeps its unfinished upload when it fails in a way worth retrying, so a later run resumes it instead of
sending every part again. What nobody will resume is cleaned before a run: an upload older than the stale age
(no live run takes that long to write one object), and one whose source object no longer exists (no run can
complete it with the source's bytes). A younger upload of an object the source still holds is left alone:
another run may be writing it, or this run resumes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from airflow_multicloud.errors import ObjectNotFoundError, StoreError
from airflow_multicloud.replication.model import Location
from airflow_multicloud.stores.base import UploadInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Leftover:
    """An unfinished upload found before a run, and what became of it."""

    uri: str
    upload_id: str
    age: timedelta | None
    reason: str
    aborted: bool
    dry_run: bool = False

    def __str__(self) -> str:
        age = "of unknown age" if self.age is None else f"started {_human(self.age)} ago"
        done = "aborted" if self.aborted else "left as it is (dry run)" if self.dry_run else "could NOT be aborted"
        return f"{self.uri} (upload {self.upload_id}, {age}, {self.reason}): {done}"


def _human(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _age(upload: UploadInfo, now: datetime) -> timedelta | None:
    if upload.initiated is None:
        return None
    started = upload.initiated if upload.initiated.tzinfo else upload.initiated.replace(tzinfo=UTC)
    return now - started


def _why(source: Location, rel: str, age: timedelta | None, stale_age: timedelta, planned: Collection[str]) -> str:
    """Why an upload is left over ('' when it may still be resumed or written by another run)."""
    if age is not None and age >= stale_age:
        return f"older than {_human(stale_age)}"
    if rel in planned:
        return ""
    try:
        source.store.head(source.key(rel))
    except ObjectNotFoundError:
        return "its source object no longer exists"
    return ""


def clean_uploads(
    source: Location,
    destinations: Sequence[Location],
    planned: Collection[str] | Callable[[set[str]], Collection[str]],
    stale_age: timedelta,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[Leftover]:
    """Find the left-over unfinished uploads under each destination, abort them (unless ``dry_run``), log each.

    :param planned: keys relative to the source prefix that the run's plan found at the source, or a function
        that says which of the keys it is given the plan found (asked once, with the keys of the young uploads: a
        plan of millions is then read once and never held); a key it does not name is looked up at the source.
    :return: every left-over upload found, with whether it was aborted; none is skipped silently.
    """
    now = now or datetime.now(UTC)
    found: list[Leftover] = []
    listed: list[tuple[Location, UploadInfo, str, timedelta | None]] = []
    for dest in destinations:
        try:
            uploads = list(dest.store.list_multipart_uploads(dest.prefix))
        except StoreError as exc:
            log.warning("cannot list the unfinished uploads under %s, none cleaned there: %s", dest.uri, exc)
            continue
        listed.extend((dest, u, u.key[len(dest.prefix) :], _age(u, now)) for u in uploads)
    if callable(planned):
        planned = planned({rel for _, _, rel, age in listed if age is None or age < stale_age})
    for dest, upload, rel, age in listed:
        try:
            reason = _why(source, rel, age, stale_age, planned)
        except StoreError as exc:
            log.warning("keeping unfinished upload of %s: cannot tell whether it is left over (%s)", rel, exc)
            continue
        if not reason:
            continue
        aborted = not dry_run and dest.store.abort_quietly(upload.key, upload.upload_id)
        leftover = Leftover(dest.store.uri(upload.key), upload.upload_id, age, reason, aborted, dry_run)
        log.warning("unfinished upload %s", leftover)
        found.append(leftover)
    return found
