"""Amazon S3 (and S3-compatible endpoints) through boto3."""

from __future__ import annotations

import builtins
import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow_multicloud.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    IntegrityError,
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
    md5_b64,
)
from airflow_multicloud.stores.retention import ObjectRetention, RetentionStatus
from airflow_multicloud.stores.s3_client import UNHASHED, make_client, tune_client
from airflow_multicloud.stores.s3_fast import DATA_CLIENT_EXTRA, DATA_CLIENTS, FastData, answer, key_fits
from airflow_multicloud.stores.s3_fast import errors as fast_errors
from airflow_multicloud.stores.s3_proof import encrypted, parts_count, proof_info

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

GiB = 1024 * MiB
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_DENIED = {
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "AccessDenied",
    "403",
    "Forbidden",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
}
# S3's answers to a request signed for (or sent to) another region than the bucket's: botocore follows them where
# it can (AWS endpoints); what still reaches us is a region to fix in the connection, not a wrong secret
_WRONG_REGION = {"AuthorizationHeaderMalformed", "PermanentRedirect", "301", "IllegalLocationConstraintException"}
_TRANSIENT = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "RequestLimitExceeded",
    "503",
    "500",
}
_INTEGRITY = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}


def _wants_lock_digest(exc: BaseException | None) -> bool:
    """S3's answer to an upload without Content-MD5 or checksum into an Object Lock bucket: 400 InvalidRequest
    "Content-MD5 OR x-amz-checksum- HTTP header is required ..." (moto names the code after the case)."""
    got = answer(exc) if exc is not None else None
    if got is not None:
        code, message = got.code, got.message
    elif isinstance(getattr(exc, "response", None), dict):
        err = exc.response.get("Error", {})  # type: ignore[union-attr]
        code, message = str(err.get("Code")), str(err.get("Message", ""))
    else:
        return False
    return code in ("InvalidRequest", "MissingUploadObjectWithObjectLockHeaders") and "content-md5" in message.lower()


class S3Store(ObjectStore):
    """One S3 bucket.

    :param client: a boto3 S3 client (e.g. from ``S3Hook(aws_conn_id=...).get_conn()``).
    :param data_client: ``"obstore"``: GET and single PUT through obstore, built from ``client`` (its endpoint,
        region, credentials, timeouts); ``"boto3"``: every request through ``client``. Uploads under Object Lock
        and keys obstore would change (``dir/``, ``a//b``) always go through ``client``.
    """

    scheme = "s3"
    max_key_bytes = 1024
    #: objects above this size are copied with UploadPartCopy (S3's CopyObject limit is 5 GiB).
    copy_threshold: ClassVar[int] = 5 * GiB

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        label: str = "",
        transfer: TransferConfig | None = None,
        data_client: str = "obstore",
    ) -> None:
        super().__init__(bucket, label=label, transfer=transfer)
        if data_client not in DATA_CLIENTS:
            raise ValueError(
                f"S3 data client {data_client!r} for bucket {bucket!r} ({label or 'no connection id'}): use "
                f"{' or '.join(map(repr, DATA_CLIENTS))} (extra {DATA_CLIENT_EXTRA!r} of the connection)"
            )
        self.client = client
        self.data_client = data_client
        tune_client(client)

    @classmethod
    def from_settings(
        cls,
        bucket: str,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        label: str = "",
        transfer: TransferConfig | None = None,
        data_client: str = "obstore",
    ) -> S3Store:
        pool = max(CLIENT_POOL_SIZE, 2 * (transfer or TransferConfig()).max_concurrency)
        client = make_client(access_key_id, secret_access_key, session_token, region, endpoint_url, pool)
        return cls(client, bucket, label=label, transfer=transfer, data_client=data_client)

    @property
    def endpoint_id(self) -> str:
        return f"s3+{self.client.meta.endpoint_url}"

    @functools.cached_property
    def payload_signed(self) -> bool:
        """True when botocore signs each request's payload SHA-256: SigV4 over plain http, or SigV4 with
        ``payload_signing_enabled``.

        S3 rejects a body whose SHA-256 differs from the signed one (XAmzContentSHA256Mismatch), so a Content-MD5
        would be a second hash of every byte on both ends; over https botocore sends UNSIGNED-PAYLOAD when a
        Content-MD5 is given, and the MD5 is the proof. Other signatures (SigV2 ``s3``, unsigned requests) sign
        no payload: Content-MD5 then.
        """
        signature = self.client.meta.config.signature_version
        if not (isinstance(signature, str) and "v4" in signature):
            return False
        s3_config = getattr(self.client.meta.config, "s3", None) or {}
        explicit = s3_config.get("payload_signing_enabled")
        if explicit is not None:
            return bool(explicit)
        return not str(self.client.meta.endpoint_url).lower().startswith("https:")

    @functools.cached_property
    def _fast(self) -> FastData | None:
        """obstore's GET and PUT for this bucket; None: boto3 does them (``data_client``, or client settings obstore
        cannot follow)."""
        if self.data_client != "obstore":
            return None
        from airflow_multicloud.stores.s3_fast import from_client

        return from_client(self.client, self.bucket)

    def _fast_for(self, key: str) -> FastData | None:
        return self._fast if key_fits(key) else None

    def _boto3_instead(self, exc: StoreError) -> bool:
        """True when boto3 should send what obstore was refused: S3 named another region (botocore follows such
        redirects and learns the bucket's region; obstore does not), or an Object Lock bucket wants a Content-MD5
        (a default retention the run did not know of)."""
        got = answer(exc.__cause__) if exc.__cause__ is not None else None
        if got is None:
            return False
        if got.code in _WRONG_REGION or got.status == 301:
            self._fast = None
            return True
        if _wants_lock_digest(exc.__cause__):
            self.lock_digest = True
            return True
        return False

    def _digest(self, data: bytes, md5: bytes | None = None) -> dict[str, str]:
        return {} if self.payload_signed else {"ContentMD5": md5_b64(data, md5)}

    # ---- errors --------------------------------------------------------------------------------------
    def _raise(self, exc: BaseException, key: str | None, action: str) -> NoReturn:
        """Turn a botocore or obstore error into one of ours; messages name the URI and the label, never a secret."""
        from botocore.exceptions import ClientError, FlexibleChecksumError, NoCredentialsError

        where = self.uri(key) if key is not None else self.uri()
        got = answer(exc)
        if got is not None:
            if got.no_credentials:
                raise AccessDeniedError(
                    f"{action} {where}: connection {self.label!r} gave no usable AWS credentials"
                ) from exc
            if not got.status:
                raise TransientStoreError(f"{action} {where}: connection problem with S3 (obstore: no answer)") from exc
            self._raise_answer(exc, key, action, got.code, got.status, got.message, None)
        if isinstance(exc, NoCredentialsError):
            raise AccessDeniedError(f"{action} {where}: connection {self.label!r} has no AWS credentials") from exc
        if isinstance(exc, FlexibleChecksumError):
            raise IntegrityError(f"{action} {where}: the SDK's checksum of the response does not match S3's") from exc
        if not isinstance(exc, ClientError):
            raise TransientStoreError(f"{action} {where}: connection problem with S3 ({type(exc).__name__})") from exc
        err = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        expected = err.get("Region") or exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get(
            "x-amz-bucket-region"
        )
        self._raise_answer(exc, key, action, str(err.get("Code", "")), status, str(err.get("Message", "")), expected)

    def _raise_answer(
        self,
        exc: BaseException,
        key: str | None,
        action: str,
        code: str,
        status: int,
        message: str,
        expected: str | None,
    ) -> NoReturn:
        """One of our errors for S3's answer (``expected``: the bucket's region where S3 named it)."""
        where = self.uri(key) if key is not None else self.uri()
        if code == "NoSuchBucket":
            raise BucketNotFoundError(
                f"{action} {where}: bucket {self.bucket!r} does not exist (connection {self.label!r})"
            ) from exc
        if code in _NOT_FOUND and key is None:
            raise BucketNotFoundError(
                f"{action} {where}: bucket {self.bucket!r} does not exist (connection {self.label!r})"
            ) from exc
        if code in _NOT_FOUND:
            raise ObjectNotFoundError(f"{action} {where}: no such object") from exc
        if code == "NoSuchUpload":
            raise ObjectNotFoundError(f"{action} {where}: the multipart upload does not exist (any more)") from exc
        if code in _WRONG_REGION or status == 301:
            raise AccessDeniedError(
                f"{action} {where}: S3 refused the region of connection {self.label!r} ("
                f"{self.client.meta.region_name!r}; {code}: {message}): set its extra region_name to "
                f"the bucket's region{f' ({expected!r})' if expected else ''}"
            ) from exc
        if code in _DENIED or status == 403:
            raise AccessDeniedError(
                f"{action} {where}: S3 rejected the credentials of connection {self.label!r} ({code}: the request "
                "signature was rejected or access is denied); check its access key id and secret"
            ) from exc
        if code in _INTEGRITY:
            raise IntegrityError(
                f"{action} {where}: S3 says the bytes it received differ from those sent ({code})"
            ) from exc
        if code in _TRANSIENT or status >= 500 or status == 429:
            raise TransientStoreError(f"{action} {where}: S3 answered {status} {code}, worth retrying") from exc
        raise StoreError(f"{action} {where}: S3 answered {status} {code}: {message}") from exc

    @contextlib.contextmanager
    def _errors(self, key: str | None, action: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (ClientError, BotoCoreError, *fast_errors()) as exc:
            self._raise(exc, key, action)

    def _bucket_exists(self) -> bool:
        """False only when S3 says the bucket is missing; any other answer leaves the original error standing."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            return exc.response.get("Error", {}).get("Code") not in (_NOT_FOUND | {"NoSuchBucket"})
        except Exception:
            return True
        return True

    # ---- reading ---------------------------------------------------------------------------------
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.list_after(prefix, "")

    def list_after(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, **({"StartAfter": start_after} if start_after else {})
        )
        with self._errors(None, "list"):
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(obj["Key"], obj["Size"], obj.get("ETag"), obj.get("LastModified"))

    def head(self, key: str) -> ObjectInfo:
        resp = self._head(key)
        meta = {k.lower(): v for k, v in resp.get("Metadata", {}).items()}
        return ObjectInfo(key, resp["ContentLength"], resp.get("ETag"), resp.get("LastModified"), None, meta)

    def source_info(self, key: str) -> ObjectInfo:
        # ChecksumMode: S3 returns the object's stored checksum only when asked
        return proof_info(key, self._head(key, ChecksumMode="ENABLED"))

    def part_sizes(self, key: str, info: ObjectInfo, *, exact: bool = False) -> builtins.list[int] | None:
        count = parts_count(info.etag)
        if count is None:
            return None
        try:
            first = int(self._head(key, PartNumber=1)["ContentLength"])
            last = info.size - (count - 1) * first
            # every common tool cuts equal parts but the last: its size confirms the guess (a retry asks each part)
            guess = not exact and 0 < last <= first
            if guess and (count == 1 or int(self._head(key, PartNumber=count)["ContentLength"]) == last):
                return [first] * (count - 1) + [last]
            with ThreadPoolExecutor(max_workers=8, thread_name_prefix="parts") as pool:
                rest = pool.map(lambda n: int(self._head(key, PartNumber=n)["ContentLength"]), range(2, count + 1))
                sizes = [first, *rest]
        except StoreError as exc:
            if exc.retryable:
                raise
            return None  # e.g. a store without ?partNumber: the object is proven some other way
        return sizes if sum(sizes) == info.size else None

    def _head(self, key: str, **extra: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key, **extra))
        except ClientError as exc:
            # HEAD errors have no body: a 404 may mean no bucket as well as no object.
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND and not self._bucket_exists():
                self._raise(exc, None, "HEAD")
            self._raise(exc, key, "HEAD")
        except BotoCoreError as exc:
            self._raise(exc, key, "HEAD")

    def read(self, key: str, start: int = 0, end: int | None = None, chunk_size: int = MiB) -> Iterator[bytes]:
        if end is not None and end <= start:
            return
        fast = self._fast_for(key)
        if fast is not None:
            sent = False
            try:
                with self._errors(key, "GET"):
                    for chunk in fast.read(key, start, end, chunk_size):
                        sent = True
                        yield chunk
                return
            except StoreError as exc:
                if sent or not self._boto3_instead(exc):
                    raise
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start > 0 or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        with self._errors(key, "GET"):
            body = self.client.get_object(**kwargs)["Body"]
            try:
                yield from body.iter_chunks(chunk_size)
            finally:
                body.close()

    # ---- changing --------------------------------------------------------------------------------
    def copy(self, src_key: str, dst_key: str, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        return self._copy(self.bucket, src_key, dst_key, metadata)

    def copy_from(
        self, src: ObjectStore, src_key: str, dst_key: str, *, metadata: Mapping[str, str] | None = None
    ) -> ObjectInfo:
        if isinstance(src, S3Store) and src.endpoint_id == self.endpoint_id:
            return self._copy(src.bucket, src_key, dst_key, metadata)
        return super().copy_from(src, src_key, dst_key, metadata=metadata)

    def _copy(self, src_bucket: str, src_key: str, dst_key: str, metadata: Mapping[str, str] | None) -> ObjectInfo:
        source = {"Bucket": src_bucket, "Key": src_key}
        src_uri = f"s3://{src_bucket}/{src_key}"
        src_store = self if src_bucket == self.bucket else S3Store(self.client, src_bucket, label=self.label)
        try:
            src_head = src_store._head(src_key, ChecksumMode="ENABLED")
        except ObjectNotFoundError as exc:
            raise ObjectNotFoundError(f"copy {src_uri} to {self.uri(dst_key)}: no such source object") from exc
        src = proof_info(src_key, src_head)
        new_meta = dict(src_head.get("Metadata", {}) if metadata is None else metadata)
        extra: dict[str, Any] = {}
        if src_head.get("ContentType"):
            extra["ContentType"] = src_head["ContentType"]
        # Copied part by part in the source's own layout, a multipart object keeps its ETag: the proof of the copy
        layout = None
        if src.checksum is None and src.etag_is_md5 and parts_count(src.etag):
            layout = src_store.part_sizes(src_key, src)
        with self._errors(dst_key, f"copy {src_uri} to"):
            if layout is not None or src.size > self.copy_threshold:
                resp = self._multipart_copy(source, dst_key, src.size, new_meta, extra, layout)
                etag, last_modified = str(resp.get("ETag", "")), None
            else:
                if metadata is None:
                    extra = {"MetadataDirective": "COPY"}
                else:
                    extra.update(MetadataDirective="REPLACE", Metadata=new_meta)
                if src.checksum_algorithm:  # S3 computes the same checksum over the bytes it writes
                    extra["ChecksumAlgorithm"] = src.checksum_algorithm
                resp = self.client.copy_object(Bucket=self.bucket, Key=dst_key, CopySource=source, **extra)
                result = resp.get("CopyObjectResult", {})
                etag, last_modified = result.get("ETag", ""), result.get("LastModified")
                resp = {**resp, **{k: v for k, v in result.items() if k.startswith("Checksum")}}
        if self.retention is not None:  # a copy does not carry the source's lock, nor ours
            with self._errors(dst_key, "set the retention of"):
                self.client.put_object_retention(Bucket=self.bucket, Key=dst_key, Retention=self._retention_body())
        checksum = resp.get(f"Checksum{src.checksum_algorithm}") if src.checksum_algorithm else None
        return ObjectInfo(
            dst_key,
            src.size,
            etag,
            last_modified,
            None,
            {k.lower(): v for k, v in new_meta.items()},
            src.checksum_algorithm if checksum else None,
            checksum,
            not encrypted(resp),
        )

    def _multipart_copy(
        self,
        source: dict[str, str],
        dst_key: str,
        size: int,
        metadata: dict[str, str],
        extra: dict[str, Any],
        layout: builtins.list[int] | None = None,
    ) -> dict[str, Any]:
        if layout is None:  # S3 allows 10,000 parts of at most 5 GiB each.
            part_size = min(max(self.transfer.part_size, -(-size // 10_000)), 5 * GiB)
            layout = [min(part_size, size - offset) for offset in range(0, size, part_size)]
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=dst_key, Metadata=metadata, **extra)[
            "UploadId"
        ]
        try:
            parts = []
            offset = 0
            for number, part in enumerate(layout, start=1):
                resp = self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=dst_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={offset}-{offset + part - 1}",
                )
                offset += part
                parts.append({"PartNumber": number, "ETag": resp["CopyPartResult"]["ETag"]})
            done = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=dst_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self.abort_quietly(dst_key, upload_id)
            raise
        return dict(done)

    def delete(self, key: str) -> None:
        with self._errors(key, "DELETE"):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    # ---- multipart primitives ----------------------------------------------------------------------
    def put_object(
        self,
        key: str,
        data: bytes,
        *,
        metadata: Mapping[str, str],
        content_type: str | None = None,
        md5: bytes | None = None,
    ) -> str:
        fast = None if self._locked_uploads else self._fast_for(key)
        if fast is not None:
            try:
                with self._errors(key, "PUT"):
                    return fast.put(key, data, metadata, content_type)
            except StoreError as exc:
                if not self._boto3_instead(exc):
                    raise
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        extra.update(self._lock_args())
        put = functools.partial(self.client.put_object, Bucket=self.bucket, Key=key, Metadata=dict(metadata), **extra)
        return str(self._upload(put, key, "PUT", data, md5)["ETag"])

    def create_multipart(self, key: str, *, metadata: Mapping[str, str], content_type: str | None = None) -> str:
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        extra.update(self._lock_args())
        with self._errors(key, "start multipart upload of"):
            resp = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata=dict(metadata), **extra)
        return str(resp["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        send = functools.partial(
            self.client.upload_part, Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number
        )
        return str(self._upload(send, key, f"upload part {number} of", data)["ETag"])

    #: True once this bucket is known to hold uploads under Object Lock (a run's retention, an enabled lock, or S3
    #: asking for it): S3 then wants a Content-MD5 (or a checksum header) with every PUT and part, a signed
    #: payload notwithstanding ("Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests
    #: with Object Lock parameters"; a bucket's default retention counts as such parameters)
    lock_digest: bool = False

    @property
    def _locked_uploads(self) -> bool:
        """Every upload needs a Content-MD5: this run sets retention, or the bucket is known to lock."""
        return self.lock_digest or self.retention is not None

    def _upload(self, send: Callable[..., Any], key: str, action: str, data: bytes, md5: bytes | None = None) -> Any:
        """``send(Body=data, ...)`` with the digest this bucket needs; sent once more, with a Content-MD5, when S3
        answers that an Object Lock bucket wants one (a bucket default retention the run did not know of)."""

        for _ in range(2):
            lock = self._locked_uploads
            digest = {"ContentMD5": md5_b64(data, md5)} if lock else self._digest(data, md5)
            try:
                with self._errors(key, action):
                    return send(Body=data, **digest)
            except StoreError as exc:
                if lock or not _wants_lock_digest(exc.__cause__):
                    raise
                self.lock_digest = True
        raise AssertionError("unreachable")

    @functools.cached_property
    def _unsigned_config(self) -> Any:
        from botocore.config import Config

        config = self.client.meta.config
        return config.merge(Config(s3={**(config.s3 or {}), "payload_signing_enabled": False}))

    def upload_part_by_md5(self, key: str, upload_id: str, number: int, data: bytes) -> tuple[str, bool]:
        """A part sent without a hash of its own (no signed payload, no Content-MD5): the S3 ETag of an unencrypted
        part is the MD5 of the bytes S3 stored, which the caller compares with its MD5 before completing. Where S3
        says the part is encrypted (SSE-KMS or SSE-C: ETags are no MD5s), it is sent again the usual way."""
        if self._locked_uploads:  # Object Lock: the part carries its Content-MD5
            return self.upload_part(key, upload_id, number, data), False
        UNHASHED.config = self._unsigned_config
        try:
            with self._errors(key, f"upload part {number} of"):
                resp = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
                )
        finally:
            UNHASHED.config = None
        if encrypted(resp):
            return self.upload_part(key, upload_id, number, data), True
        return str(resp["ETag"]), False

    def list_parts(self, key: str, upload_id: str) -> builtins.list[PartInfo]:
        pages = self.client.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=key, UploadId=upload_id)
        with self._errors(key, "list parts of"):
            parts = [PartInfo(p["PartNumber"], p["Size"], p["ETag"]) for page in pages for p in page.get("Parts", [])]
        return sorted(parts, key=lambda p: p.number)

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[PartInfo]) -> str:
        body = {"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]}
        with self._errors(key, "complete multipart upload of"):
            resp = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload=body
            )
        if self.retention is not None:
            # moto 5.2 drops the lock headers of CreateMultipartUpload; S3 accepts the same date again
            with self._errors(key, "set the retention of"):
                version = {"VersionId": resp["VersionId"]} if resp.get("VersionId") else {}
                self.client.put_object_retention(
                    Bucket=self.bucket, Key=key, Retention=self._retention_body(), **version
                )
        return str(resp.get("ETag", ""))

    # ---- Object Lock -------------------------------------------------------------------------------
    def _retention_body(self) -> dict[str, Any]:
        assert self.retention is not None
        return {"Mode": self.retention.mode.value, "RetainUntilDate": self.retention.until}

    def _lock_args(self) -> dict[str, Any]:
        if self.retention is None:
            return {}
        return {"ObjectLockMode": self.retention.mode.value, "ObjectLockRetainUntilDate": self.retention.until}

    def retention_status(self) -> RetentionStatus:
        from botocore.exceptions import ClientError

        remedy = f"create bucket {self.bucket!r} with Object Lock enabled (S3 cannot add it to a bucket without it)"
        try:
            conf = self.client.get_object_lock_configuration(Bucket=self.bucket)["ObjectLockConfiguration"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ObjectLockConfigurationNotFoundError":
                return RetentionStatus(False, remedy=remedy)
            self._raise(exc, None, "read the Object Lock configuration of")
        rule = conf.get("Rule", {}).get("DefaultRetention", {})
        days = rule.get("Days") or (rule["Years"] * 365 if rule.get("Years") else None)
        with self._errors(None, "read the versioning of"):
            versioned = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status") == "Enabled"
        enabled = conf.get("ObjectLockEnabled") == "Enabled"
        self.lock_digest = self.lock_digest or enabled
        return RetentionStatus(enabled, "object", rule.get("Mode"), days, versioned=versioned, remedy=remedy)

    def object_retention(self, key: str) -> ObjectRetention:
        with self._errors(key, "HEAD"):
            resp = self.client.head_object(Bucket=self.bucket, Key=key)
        return ObjectRetention(resp.get("ObjectLockMode"), resp.get("ObjectLockRetainUntilDate"))

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            with self._errors(key, "abort multipart upload of"):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ObjectNotFoundError:  # already gone: the goal of an abort
            pass

    def list_multipart_uploads(self, prefix: str = "") -> Iterator[UploadInfo]:
        pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix)
        with self._errors(None, "list multipart uploads in"):
            for page in pages:
                for up in page.get("Uploads", []):
                    yield UploadInfo(up["Key"], up["UploadId"], up.get("Initiated"))
