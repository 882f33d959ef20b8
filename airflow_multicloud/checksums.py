"""CRC64-XZ, the whole-object checksum COS and OSS compute (ECMA-182 polynomial, reflected).

anycrc gives a C implementation (GB/s) with ``combine``, so part checksums fold into the
whole-object value the way the clouds compute it for multipart objects.
"""

from __future__ import annotations

import anycrc

_CRC64 = anycrc.Model("CRC64-XZ")


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Continue a CRC64-XZ over ``data``; start with ``crc=0``."""
    if not data:
        return crc
    return int(_CRC64.calc(data, crc)) if crc else int(_CRC64.calc(data))


def crc64_combine(crc_a: int, crc_b: int, length_b: int) -> int:
    """The CRC64 of A+B, from the CRCs of A and B and the length of B."""
    if length_b == 0:
        return crc_a
    return int(_CRC64.combine(crc_a, crc_b, length_b))


class Crc64:
    """Incremental CRC64-XZ over a stream."""

    __slots__ = ("size", "value")

    def __init__(self) -> None:
        self.value = 0
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.value = crc64(data, self.value)
        self.size += len(data)
