"""The size limits of the real COS that the local COS server enforces, with the codes COS answers.

- PUT Object - Copy takes a source of at most 5 GB; a bigger one is refused with 400 EntityTooLarge and must be
  copied with multipart Upload Part - Copy (https://cloud.tencent.com/document/product/436/139742,
  https://www.tencentcloud.com/document/product/436/14118).
- Every part of a multipart upload but the last is 1 MB to 5 GB (https://www.tencentcloud.com/document/product/436/7750);
  CompleteMultipartUpload refuses a smaller one with 400 EntityTooSmall ("smaller than the minimum allowed size,
  common in multipart uploads", https://cloud.tencent.com/document/api/436/7730).

A test lowers a limit on one server (``CosService(limits=CosLimits(max_copy_source=...))``) to reach the refusal
without gigabytes of data.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class CosLimits:
    """:param max_copy_source: largest source PUT Object - Copy accepts, in bytes.
    :param min_part_size: smallest part, in bytes, CompleteMultipartUpload accepts for every part but the last."""

    max_copy_source: int = 5 * GiB
    min_part_size: int = MiB


class LimitError(Exception):
    """A request over one of the limits: ``status``, ``code`` and ``message`` are COS's answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def check_copy_source(limits: CosLimits, size: int) -> None:
    if size > limits.max_copy_source:
        raise LimitError(
            400,
            "EntityTooLarge",
            f"The copy source is {size} bytes, over the {limits.max_copy_source} bytes PUT Object - Copy takes: "
            "copy it with a multipart upload (Upload Part - Copy)",
        )


def check_part_sizes(limits: CosLimits, sizes: list[tuple[int, int]]) -> None:
    """``sizes``: (part number, size) of the parts listed in CompleteMultipartUpload, in order."""
    for number, size in sizes[:-1]:
        if size < limits.min_part_size:
            raise LimitError(
                400,
                "EntityTooSmall",
                f"Part {number} is {size} bytes: every part but the last must be at least {limits.min_part_size}",
            )
