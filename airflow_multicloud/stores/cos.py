"""Tencent Cloud COS through cos-python-sdk-v5 (imported lazily: ``qcloud_cos`` costs import time and memory)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from requests.adapters import HTTPAdapter

from airflow_multicloud.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    IntegrityError,
    InvalidKeyError,
    ObjectNotFoundError,
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
from airflow_multicloud.stores.cos_copy import CosMultipartCopy, refused_as_too_large
from airflow_multicloud.stores.cos_lock import CosObjectLock

if TYPE_CHECKING:
    from qcloud_cos import CosS3Client
    from requests import PreparedRequest, Response

T = TypeVar("T")
_META = "x-cos-meta-"
_DENIED = {"SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId", "InvalidSecretId", "ExpiredToken"}
_TRANSIENT = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"}


class EndpointAdapter(HTTPAdapter):
    """Sends every request to one address while the Host header keeps the virtual-host name the SDK signed.

    This is how a private or proxy endpoint (or a local test server) is reached without the SDK's ``IP=``
    setting, which the high-level ``copy()`` bypasses.
    """

    def __init__(self, endpoint: str, pool_maxsize: int = 10) -> None:
        split = urlsplit(endpoint)
        if split.scheme not in ("http", "https") or not split.netloc:
            raise ValueError(f"COS endpoint {endpoint!r} must look like http://host:port or https://host")
        self._scheme, self._netloc = split.scheme, split.netloc
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize)

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        url = urlsplit(request.url or "")
        if "Host" not in request.headers:
            request.headers["Host"] = url.netloc
        request.url = urlunsplit((self._scheme, self._netloc, url.path, url.query, ""))
        kwargs["proxies"] = {}  # proxies were chosen for the virtual-host name, not for this address
        return super().send(request, *args, **kwargs)


def make_client(
    *,
    secret_id: str,
    secret_key: str,
    region: str,
    token: str | None = None,
    scheme: str = "https",
    endpoint: str | None = None,
    retries: int = 3,
    pool_size: int = 10,
) -> CosS3Client:
    """A CosS3Client; with ``endpoint`` every request goes to that address (see :class:`EndpointAdapter`)."""
    import requests
    from qcloud_cos import CosConfig, CosS3Client

    config = CosConfig(
        Region=region,
        SecretId=secret_id,
        SecretKey=secret_key,
        Token=token,
        Scheme=scheme,
        PoolConnections=4,
        PoolMaxSize=pool_size,
    )
    session = None
    if endpoint:
        session = requests.Session()
        session.trust_env = False
        adapter = EndpointAdapter(endpoint, pool_maxsize=pool_size)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return CosS3Client(config, retry=retries, session=session)


class CosStore(CosObjectLock, CosMultipartCopy, ObjectStore):
    """One COS bucket (``name-APPID``).

    :param client: a configured ``qcloud_cos.CosS3Client``.
    :param endpoint: the address requests really go to, when not the region's public domain (identifies the
        service for server-side copies between stores).
    """

    scheme = "cos"
    native_crc64 = True  # x-cos-hash-crc64ecma on HEAD, combined over parts
    # COS's object key rules; the SDK itself silently drops one leading '/', so a key led by '/' would be stored
    # under another name
    max_key_bytes = 850
    key_bad_first = "/\\"
    key_bad_chars = "\x18\x19\x1a\x1b"  # CAN, EM, SUB, ESC

    def __init__(
        self,
        client: CosS3Client,
        bucket: str,
        *,
        label: str = "",
        transfer: TransferConfig | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(bucket, label=label, transfer=transfer)
        self.client = client
        conf = client.get_conf()
        self.region: str = conf._region or ""
        self._endpoint = endpoint or conf._endpoint or ""

    @classmethod
    def from_settings(
        cls,
        bucket: str,
        *,
        secret_id: str,
        secret_key: str,
        region: str,
        token: str | None = None,
        scheme: str = "https",
        endpoint: str | None = None,
        label: str = "",
        transfer: TransferConfig | None = None,
        retries: int = 3,
    ) -> CosStore:
        """Build the SDK client; ``endpoint`` (e.g. ``http://127.0.0.1:9000``) receives every request."""
        from qcloud_cos.cos_exception import CosClientError

        transfer = transfer or TransferConfig()
        try:
            client = make_client(
                secret_id=secret_id,
                secret_key=secret_key,
                region=region,
                token=token,
                scheme=scheme,
                endpoint=endpoint,
                retries=retries,
                pool_size=max(CLIENT_POOL_SIZE, transfer.max_concurrency * 2),
            )
        except (CosClientError, ValueError) as exc:
            who = label or "(no connection id)"
            raise StoreError(f"cannot configure COS for connection {who} (bucket {bucket!r}): {exc}") from None
        return cls(client, bucket, label=label, transfer=transfer, endpoint=endpoint)

    @property
    def endpoint_id(self) -> str:
        return f"cos:{self.region}@{self._endpoint}"

    # ---- error mapping -------------------------------------------------------------------------------
    def _error(self, exc: Exception, key: str | None) -> Exception:
        from qcloud_cos.cos_exception import CosClientError, CosServiceError

        where = self.uri(key) if key is not None else self.uri()
        if isinstance(exc, CosServiceError):
            code, status = exc.get_error_code(), int(exc.get_status_code())
            if code == "NoSuchKey" and key is not None:
                return ObjectNotFoundError(f"{where} does not exist")
            if code == "NoSuchBucket":
                return self._bucket_missing()
            if code in _DENIED or status == 403:
                return AccessDeniedError(
                    f"COS rejected the request signature for {where} ({code}, HTTP {status}): check the SecretId "
                    f"and SecretKey of connection {self.label} and that they may access bucket {self.bucket!r}"
                )
            if code in _TRANSIENT or status >= 500 or status == 429:
                return TransientStoreError(f"COS answered {code} (HTTP {status}) for {where}; retry later")
            if code in ("BadDigest", "InvalidDigest"):
                return IntegrityError(f"COS received bytes for {where} that differ from those sent ({code})")
            return StoreError(f"COS answered {code} (HTTP {status}) for {where}: {exc.get_error_msg()}")
        if isinstance(exc, CosClientError):
            return TransientStoreError(f"could not reach COS for {where} (connection {self.label}): {exc}")
        return exc

    def _bucket_missing(self) -> BucketNotFoundError:
        return BucketNotFoundError(
            f"COS bucket {self.bucket!r} does not exist in region {self.region!r} (connection {self.label}): "
            "check the bucket name (name-APPID) and the region"
        )

    def _call(self, fn: Callable[[], T], key: str | None = None) -> T:
        import requests
        from qcloud_cos.cos_exception import CosException

        try:
            return fn()
        except CosException as exc:
            raise self._error(exc, key) from exc
        except requests.RequestException as exc:
            raise TransientStoreError(f"connection to COS failed for {self.uri(key or '')}: {exc}") from exc

    @staticmethod
    def _check_key(key: str) -> None:
        # Not key_problem: the service's own refusals (length, control characters) must reach the server, so the
        # test bed can show it refuses them as COS does. These two never would: the SDK refuses an empty key and
        # strips a leading '/' (qcloud_cos.cos_comm.format_path), which would address another object.
        if not key or key.startswith("/"):
            raise InvalidKeyError(f"COS cannot hold the key {key!r}: keys must be non-empty and not start with '/'")

    # ---- reading -------------------------------------------------------------------------------------
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.list_after(prefix, "")

    def list_after(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        marker = start_after
        while True:
            page = self._call(
                lambda m=marker: self.client.list_objects(  # type: ignore[misc]
                    Bucket=self.bucket, Prefix=prefix, Marker=m, MaxKeys=1000, EncodingType="url"
                )
            )
            contents = page.get("Contents", [])
            for item in contents:
                yield ObjectInfo(
                    key=unquote(item["Key"]),
                    size=int(item["Size"]),
                    etag=item.get("ETag", "").strip('"') or None,
                    last_modified=_iso(item.get("LastModified")),
                )
            if page.get("IsTruncated") != "true":
                return
            next_marker = page.get("NextMarker") or (contents[-1]["Key"] if contents else "")
            if not next_marker:
                return
            marker = unquote(next_marker)

    def head(self, key: str) -> ObjectInfo:
        from qcloud_cos.cos_exception import CosServiceError

        self._check_key(key)
        try:
            headers = self._call(lambda: self.client.head_object(Bucket=self.bucket, Key=key), key)
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, CosServiceError) and cause.get_status_code() == 404:
                self._check_bucket()
                raise ObjectNotFoundError(f"{self.uri(key)} does not exist") from None
            raise
        return _object_info(key, headers)

    def _check_bucket(self) -> None:
        """A HEAD answers 404 without a body for a missing key and a missing bucket alike: ask the bucket."""
        from qcloud_cos.cos_exception import CosServiceError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except CosServiceError as exc:
            if exc.get_status_code() == 404:
                raise self._bucket_missing() from None

    def read(self, key: str, start: int = 0, end: int | None = None, chunk_size: int = MiB) -> Iterator[bytes]:
        self._check_key(key)
        if end is not None and end <= start:
            self.head(key)
            return iter(())
        kwargs: dict[str, str] = {}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        resp = self._call(lambda: self.client.get_object(Bucket=self.bucket, Key=key, **kwargs), key)
        return self._stream(key, resp, chunk_size)

    def _stream(self, key: str, resp: dict[str, Any], chunk_size: int) -> Iterator[bytes]:
        import requests

        body = resp["Body"]
        expected = int(resp.get("Content-Length", -1))
        got = 0
        try:
            for chunk in body.get_stream(chunk_size):
                got += len(chunk)
                yield chunk
        except requests.RequestException as exc:
            raise TransientStoreError(f"reading {self.uri(key)} broke off after {got} bytes: {exc}") from exc
        finally:
            body.get_raw_stream().close()
        if expected >= 0 and got != expected:
            raise TransientStoreError(f"reading {self.uri(key)} ended after {got} of {expected} bytes")

    # ---- changing ------------------------------------------------------------------------------------
    def copy(self, src_key: str, dst_key: str, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        return self._copy(self.bucket, src_key, dst_key, metadata)

    def copy_from(
        self, src: ObjectStore, src_key: str, dst_key: str, *, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        if isinstance(src, CosStore) and src.endpoint_id == self.endpoint_id:
            return self._copy(src.bucket, src_key, dst_key, metadata)
        return super().copy_from(src, src_key, dst_key, metadata=metadata)

    def _copy(self, src_bucket: str, src_key: str, dst_key: str, metadata: Mapping[str, str] | None) -> ObjectInfo:
        self._check_key(src_key)
        self._check_key(dst_key)
        source = {"Bucket": src_bucket, "Key": src_key, "Region": self.region}
        kwargs: dict[str, Any] = {}
        if metadata is not None:
            # Replaced resets every header, so the source's Content-Type is carried over explicitly
            src_headers = self._call(lambda: self.client.head_object(Bucket=src_bucket, Key=src_key), src_key)
            kwargs["ContentType"] = src_headers.get("Content-Type", "application/octet-stream")
            kwargs["Metadata"] = _meta_headers(metadata)
        status = "Copy" if metadata is None else "Replaced"
        try:
            self._call(
                lambda: self.client.copy_object(
                    Bucket=self.bucket, Key=dst_key, CopySource=source, CopyStatus=status, **kwargs
                ),
                dst_key,
            )
        except StoreError as exc:
            if not refused_as_too_large(exc):
                raise
            self._copy_in_parts(src_bucket, src_key, dst_key, metadata)  # sets the retention on completion
            return self.head(dst_key)
        self._retain(dst_key)
        return self.head(dst_key)

    def delete(self, key: str) -> None:
        self._check_key(key)
        with self._lock_refusal(key, "delete"):
            self._call(lambda: self.client.delete_object(Bucket=self.bucket, Key=key), key)

    # ---- multipart primitives ------------------------------------------------------------------------
    def put_object(
        self,
        key: str,
        data: bytes,
        *,
        metadata: Mapping[str, str],
        content_type: str | None = None,
        md5: bytes | None = None,
    ) -> str:
        self._check_key(key)
        kwargs = _put_kwargs(metadata, content_type)
        digest = md5_b64(data, md5)
        with self._lock_refusal(key, "overwrite"):
            resp = self._call(
                lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentMD5=digest, **kwargs),
                key,
            )
        etag = check_sent_part(
            self.uri(key), "object", data, _reported_crc64(resp), str(resp.get("ETag", "")).strip('"')
        )
        self._retain(key)
        return etag

    def create_multipart(self, key: str, *, metadata: Mapping[str, str], content_type: str | None = None) -> str:
        self._check_key(key)
        kwargs = _put_kwargs(metadata, content_type)
        resp = self._call(lambda: self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **kwargs), key)
        return str(resp["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        resp = self._call(
            lambda: self.client.upload_part(
                Bucket=self.bucket, Key=key, Body=data, PartNumber=number, UploadId=upload_id
            ),
            key,
        )
        etag = str(resp.get("ETag", "")).strip('"')
        return check_sent_part(self.uri(key), f"part {number}", data, _reported_crc64(resp), etag)

    def list_parts(self, key: str, upload_id: str) -> builtins.list[PartInfo]:
        parts: builtins.list[PartInfo] = []
        marker = 0
        while True:
            page = self._call(
                lambda m=marker: self.client.list_parts(  # type: ignore[misc]
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=m, MaxParts=1000
                ),
                key,
            )
            parts += [
                PartInfo(int(p["PartNumber"]), int(p["Size"]), p["ETag"].strip('"')) for p in page.get("Part", [])
            ]
            if page.get("IsTruncated") != "true":
                return sorted(parts, key=lambda p: p.number)
            marker = int(page["NextPartNumberMarker"])

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[PartInfo]) -> str:
        body = {"Part": [{"PartNumber": p.number, "ETag": f'"{p.etag}"'} for p in parts]}
        with self._lock_refusal(key, "overwrite"):
            resp = self._call(
                lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload=body
                ),
                key,
            )
        self._retain(key)
        return str(resp.get("ETag", "")).strip('"')

    def list_multipart_uploads(self, prefix: str = "") -> Iterator[UploadInfo]:
        key_marker = id_marker = ""
        while True:
            page = self._call(
                lambda k=key_marker, u=id_marker: self.client.list_multipart_uploads(  # type: ignore[misc]
                    Bucket=self.bucket, Prefix=prefix, KeyMarker=k, UploadIdMarker=u, MaxUploads=1000
                )
            )
            for up in page.get("Upload", []):
                yield UploadInfo(up["Key"], up["UploadId"], _iso(up.get("Initiated")))
            if page.get("IsTruncated") != "true":
                return
            key_marker, id_marker = page.get("NextKeyMarker", ""), page.get("NextUploadIdMarker", "")


def _iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _meta_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    return {f"{_META}{k.lower()}": str(v) for k, v in metadata.items()}


def _put_kwargs(metadata: Mapping[str, str], content_type: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if metadata:
        kwargs["Metadata"] = _meta_headers(metadata)
    if content_type:
        kwargs["ContentType"] = content_type
    return kwargs


def _reported_crc64(headers: Mapping[str, str]) -> int | None:
    """The x-cos-hash-crc64ecma COS answers a PUT, an UploadPart, a HEAD or a GET with (None where absent)."""
    crc = next((v for k, v in headers.items() if k.lower() == "x-cos-hash-crc64ecma"), None)
    return int(crc) if crc and crc.isdigit() else None


def _object_info(key: str, headers: Mapping[str, str]) -> ObjectInfo:
    lower = {k.lower(): v for k, v in headers.items()}
    modified = lower.get("last-modified")
    return ObjectInfo(
        key=key,
        size=int(lower.get("content-length", 0)),
        etag=lower.get("etag", "").strip('"') or None,
        last_modified=parsedate_to_datetime(modified) if modified else None,
        crc64=_reported_crc64(lower),
        metadata={k[len(_META) :]: v for k, v in lower.items() if k.startswith(_META)},
    )
