"""COS object lock on the local COS server: ``PUT/GET /?object-lock``, ``PUT/GET /<key>?retention``, retention
headers on PutObject / InitiateMultipartUpload, and the refusal of deletes and overwrites while an object is retained.

Object lock is COMPLIANCE only on COS, cannot be disabled once enabled, and a retention date can only be extended.
A refused delete or overwrite answers 403 AccessDenied, as S3 Object Lock does (COS's lock API mirrors S3's). COS's
own documentation (Object Lock Overview, the DELETE Object and error code pages, read 2026-12) says a locked object
"cannot be overwritten or deleted" but names no error code for it: check this against a real bucket when one with
object lock (an allowlisted feature) is at hand. CosStore does not rely on the code: on AccessDenied it asks the
object's retention before calling the refusal a lock.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from multicloud_testbed import disk
from multicloud_testbed.cos_protocol import iso_time
from multicloud_testbed.locks import DAY

MODE_HEADER = "x-cos-object-lock-mode"
UNTIL_HEADER = "x-cos-object-lock-retain-until-date"


def _parse_date(value: str) -> float:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp()
    except ValueError:
        raise ValueError(f"RetainUntilDate {value!r} is not an ISO 8601 date") from None


class CosLockOps:
    """Mixin of :class:`~multicloud_testbed.cos_handler.CosHandler` for object lock and retention."""

    if TYPE_CHECKING:
        server: Any
        bucket: str
        key: str
        headers: Any

        def _small_body(self) -> bytes: ...

        def _reply(
            self,
            status: int = 200,
            root: str | None = None,
            children: list[tuple[str, Any]] | None = None,
            headers: dict[str, str] | None = None,
        ) -> None: ...

    def op_PutBucketObjectLock(self) -> None:
        root = ET.fromstring(self._small_body())
        if (root.findtext("ObjectLockEnabled") or "") != "Enabled":
            raise ValueError("ObjectLockEnabled must be Enabled (object lock cannot be disabled)")
        days = root.findtext("Rule/DefaultRetention/Days")
        mode = root.findtext("Rule/DefaultRetention/Mode") or "COMPLIANCE"
        if mode != "COMPLIANCE" or (days is not None and not (days.isdigit() and 1 <= int(days) <= 36500)):
            raise ValueError("DefaultRetention takes Mode COMPLIANCE and Days 1-36500")
        self.server.locks.enable_object_lock(self.bucket, int(days or 0))
        self._reply()

    def op_GetBucketObjectLock(self) -> None:
        days = self.server.locks.object_lock(self.bucket)
        children: list[tuple[str, Any]] = []
        if days is not None:
            children.append(("ObjectLockEnabled", "Enabled"))
            if days:
                children.append(("Rule", [("DefaultRetention", [("Mode", "COMPLIANCE"), ("Days", days)])]))
        self._reply(200, "ObjectLockConfiguration", children)

    def op_PutObjectRetention(self) -> None:
        self.server.buckets.head(self.bucket, self.key)
        self._require_lock()
        root = ET.fromstring(self._small_body())
        if (root.findtext("Mode") or "") != "COMPLIANCE":
            raise ValueError("Retention Mode must be COMPLIANCE")
        until = _parse_date(root.findtext("RetainUntilDate") or "")
        self.server.locks.retain(self.bucket, self.key, "COMPLIANCE", until)
        self._reply()

    def op_GetObjectRetention(self) -> None:
        self.server.buckets.head(self.bucket, self.key)
        found = self.server.locks.retention(self.bucket, self.key)
        if found is None:
            raise disk.NoSuchKey(f"{self.key} has no retention")
        self._reply(200, "Retention", [("Mode", found[0]), ("RetainUntilDate", iso_time(found[1]))])

    # ---- hooks of the writing and deleting operations ----------------------------------------------------
    def _require_lock(self) -> None:
        if self.server.locks.object_lock(self.bucket) is None:
            raise ValueError(f"object lock is not enabled for bucket {self.bucket}: PUT /?object-lock first")

    def guard(self, key: str) -> None:
        """Refuse (RetentionRefused) to replace or delete ``key`` while it is retained."""
        try:
            modified: float | None = self.server.buckets.head(self.bucket, key).last_modified
        except KeyError:
            modified = None
        self.server.locks.guard(self.bucket, key, modified)

    def requested_lock(self) -> tuple[str, float] | None:
        """The retention the request's headers ask for (checked before any byte is stored)."""
        mode, until = self.headers.get(MODE_HEADER), self.headers.get(UNTIL_HEADER)
        if mode is None and until is None:
            return None
        self._require_lock()
        if mode != "COMPLIANCE" or not until:
            raise ValueError(f"{MODE_HEADER} must be COMPLIANCE and {UNTIL_HEADER} a date")
        return mode, _parse_date(until)

    def retain_written(self, key: str, asked: tuple[str, float] | None) -> None:
        """Apply the asked retention, else the bucket's default, to the object just written."""
        default_days = self.server.locks.object_lock(self.bucket)
        if asked is None and default_days:
            asked = ("COMPLIANCE", self.server.buckets.head(self.bucket, key).last_modified + default_days * DAY)
        if asked is not None:
            self.server.locks.retain(self.bucket, key, *asked)
