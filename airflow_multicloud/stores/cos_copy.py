"""Server-side copies of COS objects too big for PUT Object - Copy, for
:class:`~airflow_multicloud.stores.cos.CosStore`.

COS copies a source of at most 5 GB in one request and answers a bigger one with 400 EntityTooLarge; the way
is a multipart upload whose parts are Upload Part - Copy requests of ranges of the source (up to 5 GB each;
https://www.tencentcloud.com/document/product/436/14118). No byte passes through this process either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_multicloud.errors import StoreError
from airflow_multicloud.stores.base import PartInfo, TransferConfig

if TYPE_CHECKING:
    from qcloud_cos import CosS3Client

T = TypeVar("T")
log = logging.getLogger(__name__)
MAX_PARTS = 10_000  # COS: part numbers 1-10000


def refused_as_too_large(exc: StoreError) -> bool:
    """Whether COS refused a PUT Object - Copy because the source is over its single-request limit."""
    from qcloud_cos.cos_exception import CosServiceError

    cause = exc.__cause__
    return isinstance(cause, CosServiceError) and cause.get_error_code() == "EntityTooLarge"


class CosMultipartCopy:
    """Mixin: the multipart half of CosStore's server-side copy."""

    if TYPE_CHECKING:
        client: CosS3Client
        bucket: str
        region: str
        transfer: TransferConfig

        def uri(self, key: str = "") -> str: ...

        def _call(self, fn: Callable[[], T], key: str | None = None) -> T: ...

        def create_multipart(
            self, key: str, *, metadata: Mapping[str, str], content_type: str | None = None
        ) -> str: ...

        def complete_multipart(self, key: str, upload_id: str, parts: list[PartInfo]) -> str: ...

        def abort_quietly(self, key: str, upload_id: str) -> bool: ...

    def _copy_in_parts(self, src_bucket: str, src_key: str, dst_key: str, metadata: Mapping[str, str] | None) -> None:
        """Copy ``src_bucket/src_key`` to ``dst_key`` with Upload Part - Copy, ``transfer.max_concurrency`` parts at
        a time; ``metadata=None`` keeps the source's user metadata, as PUT Object - Copy would. The upload is
        aborted if any part fails."""
        from airflow_multicloud.stores.cos import _object_info

        headers = self._call(lambda: self.client.head_object(Bucket=src_bucket, Key=src_key), src_key)
        source = _object_info(src_key, headers)
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        part_size = max(self.transfer.part_size, -(-source.size // MAX_PARTS))
        starts = range(0, source.size, part_size)
        ranges = [(n, start, min(start + part_size, source.size) - 1) for n, start in enumerate(starts, 1)]
        log.info(
            "COS copies at most 5 GB in one request: copying %s (%d bytes) to %s in %d parts",
            f"cos://{src_bucket}/{src_key}",
            source.size,
            self.uri(dst_key),
            len(ranges),
        )
        upload_id = self.create_multipart(
            dst_key, metadata=source.metadata if metadata is None else metadata, content_type=content_type
        )
        copy_source = {"Bucket": src_bucket, "Key": src_key, "Region": self.region}

        def copy_part(part: tuple[int, int, int]) -> PartInfo:
            number, first, last = part
            resp: dict[str, Any] = self._call(
                lambda: self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=dst_key,
                    PartNumber=number,
                    UploadId=upload_id,
                    CopySource=copy_source,
                    CopySourceRange=f"bytes={first}-{last}",
                ),
                dst_key,
            )
            return PartInfo(number, last - first + 1, str(resp.get("ETag", "")).strip('"'))

        try:
            with ThreadPoolExecutor(self.transfer.max_concurrency, thread_name_prefix="cos-copy") as pool:
                parts = list(pool.map(copy_part, ranges))
            self.complete_multipart(dst_key, upload_id, parts)
        except BaseException:
            self.abort_quietly(dst_key, upload_id)
            raise
