"""COS object lock for :class:`~airflow_multicloud.stores.cos.CosStore`: retention per object (PUT/GET Object
Retention, which the SDK has no method for), the bucket's lock configuration, and the refusals it causes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_multicloud.errors import AccessDeniedError, ObjectNotFoundError, RetentionLockedError, StoreError
from airflow_multicloud.stores.base import md5_b64
from airflow_multicloud.stores.retention import NO_RETENTION, ObjectRetention, RetentionPolicy, RetentionStatus

if TYPE_CHECKING:
    from qcloud_cos import CosS3Client

T = TypeVar("T")


class CosObjectLock:
    """Mixin: the object-lock half of CosStore."""

    if TYPE_CHECKING:
        client: CosS3Client
        bucket: str
        retention: RetentionPolicy | None

        def uri(self, key: str = "") -> str: ...

        def _call(self, fn: Callable[[], T], key: str | None = None) -> T: ...

    @contextlib.contextmanager
    def _lock_refusal(self, key: str, action: str) -> Iterator[None]:
        """COS answers a delete or overwrite of a locked object with AccessDenied, like a wrong key: ask the object."""
        try:
            yield
        except AccessDeniedError:
            held = self.object_retention(key)
            if held.active():
                raise RetentionLockedError(
                    f"COS refused to {action} {self.uri(key)}: object lock retains it until {held.until:%Y-%m-%d %H:%M}"
                    " UTC"
                ) from None
            raise

    def _retain(self, key: str) -> None:
        """PUT Object Retention on what was just written (COS keeps retention per object, COMPLIANCE only)."""
        if self.retention is None:
            return
        until = self.retention.until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        body = f"<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>{until}</RetainUntilDate></Retention>"
        self._call(lambda: self._object_request("PUT", key, "retention", body.encode()), key)

    def _object_request(self, method: str, key: str, param: str, body: bytes = b"") -> Any:
        """A signed request for a sub-resource the SDK has no method for (``?retention``)."""
        from qcloud_cos.cos_auth import CosS3Auth

        params = {param: ""}
        headers = {"Content-MD5": md5_b64(body), "Content-Type": "application/xml"} if body else {}
        conf = self.client.get_conf()
        return self.client.send_request(
            method=method,
            url=conf.uri(bucket=self.bucket, path=key),
            bucket=self.bucket,
            data=body,
            auth=CosS3Auth(conf, key, params=params),
            headers=headers,
            params=params,
        )

    def retention_status(self) -> RetentionStatus:
        from qcloud_cos.cos_exception import CosServiceError

        remedy = f"enable object lock on bucket {self.bucket!r} (PUT Bucket ObjectLockConfiguration; not multi-AZ)"
        try:
            conf = self._call(lambda: self.client.get_bucket_object_lock(Bucket=self.bucket))
        except StoreError as exc:
            if isinstance(exc.__cause__, CosServiceError) and exc.__cause__.get_status_code() == 404:
                return RetentionStatus(False, remedy=remedy)
            raise
        rule = ((conf or {}).get("Rule") or {}).get("DefaultRetention") or {}
        days = int(rule["Days"]) if rule.get("Days") else None
        enabled = (conf or {}).get("ObjectLockEnabled") == "Enabled"
        return RetentionStatus(enabled, "object", rule.get("Mode", "COMPLIANCE" if days else None), days, remedy=remedy)

    def object_retention(self, key: str) -> ObjectRetention:
        import xml.etree.ElementTree as ET

        from qcloud_cos.cos_exception import CosServiceError

        try:
            resp = self._call(lambda: self._object_request("GET", key, "retention"), key)
        except (ObjectNotFoundError, StoreError) as exc:
            if isinstance(exc, ObjectNotFoundError) or (
                isinstance(exc.__cause__, CosServiceError) and exc.__cause__.get_status_code() == 404
            ):
                return NO_RETENTION
            raise
        root = ET.fromstring(resp.content)
        until = root.findtext("RetainUntilDate")
        return ObjectRetention(root.findtext("Mode"), datetime.fromisoformat(until) if until else None)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self._call(lambda: self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id), key)
        except StoreError as exc:
            if "NoSuchUpload" not in str(exc):  # already gone: nothing left to free
                raise
