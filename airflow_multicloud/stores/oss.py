"""Alibaba Cloud OSS behind the ObjectStore interface, over oss2 (imported lazily: parsing a DAG stays fast)."""

from __future__ import annotations

import builtins
import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_multicloud.checksums import Crc64
from airflow_multicloud.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    IntegrityError,
    InvalidKeyError,
    ObjectNotFoundError,
    RetentionLockedError,
    StoreError,
    TransientStoreError,
)
from airflow_multicloud.stores.base import (
    CLIENT_POOL_SIZE,
    MiB,
    ObjectInfo,
    ObjectStore,
    PartInfo,
    TransferConfig,
    UploadInfo,
    check_sent_part,
    md5_b64,
)
from airflow_multicloud.stores.retention import NO_RETENTION, ObjectRetention, RetentionStatus

if TYPE_CHECKING:
    import oss2

META_PREFIX = "x-oss-meta-"
_TRANSIENT_CODES = frozenset({"SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError", "Throttling"})
# OSS's error numbers for a V4 signature scoped to a region that is not the endpoint's or the bucket's
_REGION_ECS = frozenset({"0002-00000226", "0002-00000228", "0002-00000715"})
_ACCESS_CODES = frozenset({"SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId", "SecurityTokenExpired"})


def _when(ts: float | int | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


class OssStore(ObjectStore):
    """One OSS bucket through an ``oss2.Bucket``.

    :param client: the oss2 bucket client (its auth, endpoint and region decide where requests go).
    :param label: how errors name the credentials, e.g. the Airflow connection id; never a secret.
    :param transfer: multipart settings for ``write``.
    """

    scheme: ClassVar[str] = "oss"
    native_crc64: ClassVar[bool] = True  # x-oss-hash-crc64ecma on HEAD, combined over parts
    # OSS computes multipart ETags its own way: only single-PUT ETags are the MD5; the CRC64 proves the rest
    etag_is_md5: ClassVar[bool] = False
    max_key_bytes: ClassVar[int | None] = 1023
    key_bad_first: ClassVar[str] = "/\\"
    # CopyObject takes sources up to 1 GiB; larger ones are copied part by part (UploadPartCopy).
    copy_part_threshold: ClassVar[int] = 1024 * MiB

    def __init__(self, client: oss2.Bucket, *, label: str = "", transfer: TransferConfig | None = None) -> None:
        super().__init__(client.bucket_name, label=label, transfer=transfer)
        self.client = client
        self._worm_cache: RetentionStatus | None = None

    @classmethod
    def from_settings(
        cls,
        bucket: str,
        *,
        access_key_id: str,
        access_key_secret: str,
        endpoint: str,
        region: str | None = None,
        auth_version: str = "v4",
        security_token: str | None = None,
        label: str = "",
        transfer: TransferConfig | None = None,
    ) -> OssStore:
        """Build the oss2 client from plain settings.

        :param endpoint: e.g. ``https://oss-cn-hangzhou.aliyuncs.com`` (an IP endpoint switches oss2 to path style).
        :param region: e.g. ``cn-hangzhou``; required by signature v4.
        :param auth_version: ``v4`` (default) or ``v1``.
        """
        import oss2

        if auth_version not in ("v1", "v4"):
            raise ValueError(f"OSS auth_version must be 'v1' or 'v4', got {auth_version!r} ({label or 'no label'})")
        if auth_version == "v4" and not region:
            raise ValueError(f"OSS signature v4 needs a region, e.g. cn-hangzhou ({label or 'no label'})")
        auth: Any
        if security_token:
            auth = oss2.StsAuth(access_key_id, access_key_secret, security_token, auth_version=auth_version)
        elif auth_version == "v4":
            auth = oss2.AuthV4(access_key_id, access_key_secret)
        else:
            auth = oss2.Auth(access_key_id, access_key_secret)
        try:
            # enable_crc=False: oss2's own CRC64 (crcmod, ~190 MB/s) would be a second pass over every byte; this
            # store checks the CRC64 OSS answers with itself, with anycrc (GB/s), on uploads and whole reads
            client = oss2.Bucket(
                auth,
                endpoint,
                bucket,
                region=region,
                session=oss2.Session(pool_size=CLIENT_POOL_SIZE),
                enable_crc=False,
            )
        except oss2.exceptions.ClientError as exc:
            raise ValueError(
                f"invalid OSS bucket {bucket!r} or endpoint {endpoint!r} ({label or 'no label'}): {exc}"
            ) from None
        return cls(client, label=label, transfer=transfer)

    @property
    def endpoint_id(self) -> str:
        return f"oss:{self.client.endpoint}"

    # ---- errors -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, key: str | None = None) -> Iterator[None]:
        """Turn oss2 and transport exceptions into this package's errors (never quoting a secret)."""
        import oss2
        import requests
        import urllib3

        try:
            yield
        except oss2.exceptions.InconsistentError as exc:
            raise IntegrityError(
                f"{self._where(key)}: CRC64 mismatch between sent/received bytes and OSS: {exc}"
            ) from exc
        except oss2.exceptions.RequestError as exc:
            raise TransientStoreError(f"{self._where(key)}: cannot reach {self.client.endpoint}: {exc}") from exc
        except oss2.exceptions.OssError as exc:
            raise self._server_error(exc, key) from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError) as exc:
            raise TransientStoreError(
                f"{self._where(key)}: connection to {self.client.endpoint} failed: {exc}"
            ) from exc

    def _where(self, key: str | None) -> str:
        return self.uri(key) if key is not None else self.uri()

    def _server_error(self, exc: Any, key: str | None) -> StoreError:
        code, status = exc.code or "", exc.status
        detail = f"(OSS {status} {code or 'no code'}, request id {exc.request_id or '-'})"
        if code == "NoSuchBucket":
            return BucketNotFoundError(
                f"bucket {self.bucket!r} does not exist on {self.client.endpoint} (connection {self.label!r}): "
                f"create it or fix the bucket name {detail}"
            )
        if code == "NoSuchKey" or (status == 404 and not code and key is not None):
            return ObjectNotFoundError(f"{self._where(key)} does not exist {detail}")
        if status in (400, 403) and _is_region_error(exc):
            return AccessDeniedError(
                f"OSS refused connection {self.label!r} on {self._where(key)}: the signature is scoped to region "
                f"{self.client.region!r}, which is not the bucket's: set the connection's extra \"region\" to the "
                f"bucket's region (e.g. cn-hangzhou) {detail}"
            )
        if code in _ACCESS_CODES or status == 403:
            reason = {
                "SignatureDoesNotMatch": "the request signature was rejected: check the access key secret",
                "InvalidAccessKeyId": "the access key id is unknown: check the access key id",
            }.get(code, "access was denied: check the access key secret and the permissions of the access key")
            return AccessDeniedError(
                f"OSS refused connection {self.label!r} on {self._where(key)}: {reason} of that connection {detail}"
            )
        if code == "FileImmutable":
            return RetentionLockedError(
                f"OSS refused to delete or overwrite {self._where(key)}: the bucket's WORM retention policy holds it "
                f"{detail}"
            )
        if code in ("InvalidObjectName", "KeyTooLong"):
            return InvalidKeyError(f"OSS cannot hold key {key!r}: object names are 1-1023 bytes of UTF-8 {detail}")
        if code in ("InvalidDigest", "BadDigest"):
            return IntegrityError(f"{self._where(key)}: OSS received bytes that differ from their Content-MD5 {detail}")
        if status >= 500 or status == 429 or code in _TRANSIENT_CODES:
            return TransientStoreError(f"{self._where(key)}: OSS is unavailable or throttling, retry later {detail}")
        return StoreError(f"{self._where(key)}: OSS error {exc.message or ''} {detail}")

    # ---- reading ----------------------------------------------------------------------------------
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.list_after(prefix, "")

    def list_after(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        token = ""
        while True:
            with self._errors():
                page = self.client.list_objects_v2(
                    prefix=prefix, continuation_token=token, start_after=start_after, max_keys=1000
                )
            for obj in page.object_list:
                yield ObjectInfo(obj.key, obj.size, obj.etag, _when(obj.last_modified))
            if not page.is_truncated:
                return
            token = page.next_continuation_token

    def head(self, key: str) -> ObjectInfo:
        with self._errors(key):
            result = self.client.head_object(key)
        meta = {
            k.lower()[len(META_PREFIX) :]: v for k, v in result.headers.items() if k.lower().startswith(META_PREFIX)
        }
        return ObjectInfo(
            key, result.content_length or 0, result.etag, _when(result.last_modified), result.server_crc, meta
        )

    def read(self, key: str, start: int = 0, end: int | None = None, chunk_size: int = MiB) -> Iterator[bytes]:
        if end is not None and end <= start:
            return
        whole = start == 0 and end is None
        byte_range = None if whole else (start, None if end is None else end - 1)
        with self._errors(key):
            result = self.client.get_object(key, byte_range=byte_range)
            expected = result.content_length
            crc = Crc64() if whole and result.server_crc is not None else None
            got = 0
            while chunk := result.read(chunk_size):
                got += len(chunk)
                if crc is not None:
                    crc.update(chunk)
                yield chunk
            if expected is not None and got != expected:
                raise TransientStoreError(f"{self.uri(key)}: body ended after {got} of {expected} bytes")
            if crc is not None and crc.value != result.server_crc:
                raise IntegrityError(
                    f"{self.uri(key)}: received bytes have CRC64 {crc.value:016x}, OSS reports {result.server_crc:016x}"
                )

    # ---- changing ---------------------------------------------------------------------------------
    def copy(self, src_key: str, dst_key: str, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        return self._copy(self, src_key, dst_key, metadata)

    def copy_from(
        self, src: ObjectStore, src_key: str, dst_key: str, *, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        if isinstance(src, OssStore) and src.endpoint_id == self.endpoint_id:
            return self._copy(src, src_key, dst_key, metadata)
        return super().copy_from(src, src_key, dst_key, metadata=metadata)

    def _copy(self, src: OssStore, src_key: str, dst_key: str, metadata: Mapping[str, str] | None) -> ObjectInfo:
        # HEAD first: a missing source is then reported under its own URI, and its size picks the copy method.
        source = src.head(src_key)
        with self._errors(dst_key):
            if source.size > self.copy_part_threshold:
                self._copy_parts(src.bucket, source, dst_key, source.metadata if metadata is None else metadata)
            else:
                headers = self._meta_headers(metadata or {})
                headers["x-oss-metadata-directive"] = "COPY" if metadata is None else "REPLACE"
                self.client.copy_object(src.bucket, src_key, dst_key, headers=headers)
        return self.head(dst_key)

    def _copy_parts(self, src_bucket: str, source: ObjectInfo, dst_key: str, metadata: Mapping[str, str]) -> None:
        part_size = max(self.transfer.part_size, math.ceil(source.size / 10000))
        upload_id = self.create_multipart(dst_key, metadata=metadata)
        try:
            parts = []
            for number, start in enumerate(range(0, source.size, part_size), start=1):
                end = min(start + part_size, source.size) - 1
                result = self.client.upload_part_copy(src_bucket, source.key, (start, end), dst_key, upload_id, number)
                parts.append(PartInfo(number, end - start + 1, result.etag))
            self.complete_multipart(dst_key, upload_id, parts)
        except BaseException:
            self.abort_quietly(dst_key, upload_id)
            raise

    def delete(self, key: str) -> None:
        with self._errors(key):
            self.client.delete_object(key)

    # ---- WORM (OSS retains at bucket level: every object for the policy's days after its last change) ----------
    def retention_status(self) -> RetentionStatus:
        import oss2

        remedy = (
            f"give bucket {self.bucket!r} a WORM retention policy (InitiateBucketWorm with the days, then "
            "CompleteBucketWorm to lock it)"
        )
        try:
            with self._errors():
                worm = self.client.get_bucket_worm()
        except StoreError as exc:
            if isinstance(exc.__cause__, oss2.exceptions.OssError) and exc.__cause__.status == 404:
                return RetentionStatus(False, "bucket", remedy=remedy)
            raise
        locked = worm.state == "Locked"
        return RetentionStatus(True, "bucket", "COMPLIANCE", worm.retention_period_days, locked, remedy=remedy)

    def object_retention(self, key: str) -> ObjectRetention:
        status = self._worm_cache or self.retention_status()
        self._worm_cache = status
        modified = self.head(key).last_modified
        if not status.enabled or status.days is None or modified is None:
            return NO_RETENTION
        return ObjectRetention("COMPLIANCE", modified + timedelta(days=status.days))

    # ---- multipart primitives ---------------------------------------------------------------------
    @staticmethod
    def _meta_headers(metadata: Mapping[str, str], content_type: str | None = None) -> dict[str, str]:
        headers = {META_PREFIX + k.lower(): v for k, v in metadata.items()}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def put_object(
        self,
        key: str,
        data: bytes,
        *,
        metadata: Mapping[str, str],
        content_type: str | None = None,
        md5: bytes | None = None,
    ) -> str:
        headers = self._meta_headers(metadata, content_type)
        headers["Content-MD5"] = md5_b64(data, md5)
        with self._errors(key):
            result = self.client.put_object(key, data, headers=headers)
        return check_sent_part(self.uri(key), "object", data, result.crc, str(result.etag))

    def create_multipart(self, key: str, *, metadata: Mapping[str, str], content_type: str | None = None) -> str:
        with self._errors(key):
            return str(
                self.client.init_multipart_upload(key, headers=self._meta_headers(metadata, content_type)).upload_id
            )

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        with self._errors(key):
            result = self.client.upload_part(key, upload_id, number, data)
        return check_sent_part(self.uri(key), f"part {number}", data, result.crc, str(result.etag))

    def list_parts(self, key: str, upload_id: str) -> builtins.list[PartInfo]:  # `list` is a method here
        return sorted(self._iter_parts(key, upload_id), key=lambda p: p.number)

    def _iter_parts(self, key: str, upload_id: str) -> Iterator[PartInfo]:
        marker = ""
        while True:
            with self._errors(key):
                page = self.client.list_parts(key, upload_id, marker=marker)
            for p in page.parts:
                yield PartInfo(p.part_number, p.size, p.etag)
            if not page.is_truncated:
                return
            marker = page.next_marker

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[PartInfo]) -> str:
        import oss2

        infos = [oss2.models.PartInfo(p.number, p.etag, size=p.size) for p in parts]
        with self._errors(key):
            return str(self.client.complete_multipart_upload(key, upload_id, infos).etag)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        import oss2

        try:
            with self._errors(key):
                self.client.abort_multipart_upload(key, upload_id)
        except StoreError as exc:
            if not isinstance(exc.__cause__, oss2.exceptions.NoSuchUpload):  # already gone: the goal of an abort
                raise

    def list_multipart_uploads(self, prefix: str = "") -> Iterator[UploadInfo]:
        key_marker = upload_marker = ""
        while True:
            with self._errors():
                page = self.client.list_multipart_uploads(
                    prefix=prefix, key_marker=key_marker, upload_id_marker=upload_marker
                )
            for up in page.upload_list:
                yield UploadInfo(up.key, up.upload_id, _when(up.initiation_date))
            if not page.is_truncated:
                return
            key_marker, upload_marker = page.next_key_marker, page.next_upload_id_marker


def _is_region_error(exc: Any) -> bool:
    """A V4 signature for the wrong region: OSS names it in its error number (EC) or its message."""
    return (exc.ec or "") in _REGION_ECS or "region" in (exc.message or "").lower()
