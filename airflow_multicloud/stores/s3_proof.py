"""What an S3 HEAD or copy answer says about proving an object's bytes: its whole-object checksum, whether its
ETag is MD5-based, its parts count. Plain functions of botocore's response dicts (no SDK import)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_multicloud.stores.base import ObjectInfo, normalize_etag

#: S3's whole-object checksums, the fastest to verify first
_CHECKSUMS = ("CRC64NVME", "CRC32C", "CRC32", "SHA256", "SHA1")


def encrypted(resp: Mapping[str, Any]) -> bool:
    """SSE-KMS and SSE-C objects have ETags that are not MD5s of their bytes (SSE-S3 ones do)."""
    return str(resp.get("ServerSideEncryption", "")).startswith("aws:kms") or bool(resp.get("SSECustomerAlgorithm"))


def parts_count(etag: str | None) -> int | None:
    """N of a multipart ETag ``<md5>-N``; None for any other ETag."""
    digest, sep, count = normalize_etag(etag).rpartition("-")
    return int(count) if sep and len(digest) == 32 and count.isdigit() and int(count) > 0 else None


def proof_info(key: str, resp: Mapping[str, Any]) -> ObjectInfo:
    """An ObjectInfo from a HEAD asked with ChecksumMode: its whole-object checksum and whether the ETag is MD5-based.

    A COMPOSITE checksum (multipart uploads that sent part checksums: "value-N", or no type on older servers) is a
    checksum of the parts' checksums, not of the bytes: it is left out.
    """
    etag = resp.get("ETag")
    kind = resp.get("ChecksumType")
    algorithm, value = next(((a, resp[f"Checksum{a}"]) for a in _CHECKSUMS if resp.get(f"Checksum{a}")), (None, None))
    whole = (
        value is not None and "-" not in value and (kind == "FULL_OBJECT" or (kind is None and not parts_count(etag)))
    )
    meta = {k.lower(): v for k, v in resp.get("Metadata", {}).items()}
    return ObjectInfo(
        key,
        int(resp["ContentLength"]),
        etag,
        resp.get("LastModified"),
        None,
        meta,
        algorithm if whole else None,
        value if whole else None,
        not encrypted(resp),
    )
