"""Checksum evidence for the ``quick`` level: what listings, manifests and HEADs say about an object's bytes.

Each side of a comparison (source, replica) collects :class:`Claim` s: "these bytes have CRC64 X / MD5 Y",
each saying where it came from. A claim only counts when it is tied to the object's *current* version: an
ETag or a native CRC64 is (the store computes it), a manifest record is when its ``dest_etag`` equals the
replica's listed ETag (and, for the source side, its ``source_etag`` the source's), and our copy-time metadata
is when it names the current source version and size. Two sides agree when some algorithm has claims on both
sides and every such pair is equal; one unequal pair is a mismatch. No common algorithm: unverified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_multicloud.replication.model import META_CRC64, META_SOURCE_ETAG, META_SOURCE_SIZE
from airflow_multicloud.stores.base import ObjectInfo, ObjectStore, is_md5_etag, normalize_etag

# A multipart ETag (MD5 of part MD5s + "-N") depends on the part sizes: equal ones prove equal bytes,
# unequal ones prove nothing, so they never count as a mismatch.
MULTIPART_ETAG = "multipart-etag"


@dataclass(frozen=True)
class Claim:
    """``algo`` ("crc64", "md5" or "multipart-etag") of the bytes is ``value`` (lower-case hex), says ``via``."""

    algo: str
    value: str
    via: str


@dataclass(frozen=True)
class Verdict:
    """``status`` is "passed", "failed" or "none" (nothing comparable); values are the first deciding pair."""

    status: str
    method: str = ""
    source_value: str | None = None
    replica_value: str | None = None


def _crc_hex(value: object) -> str | None:
    """16 lower-case hex digits, or None for anything that is not a CRC64 (a damaged record is no evidence)."""
    if isinstance(value, int):
        return f"{value:016x}"
    if isinstance(value, str) and len(value) == 16:
        try:
            int(value, 16)
        except ValueError:
            return None
        return value.lower()
    return None


def listing_claims(store: ObjectStore, info: ObjectInfo) -> list[Claim]:
    """Claims a listing entry (or a HEAD) carries without user metadata: ETag and native CRC64."""
    out: list[Claim] = []
    etag = normalize_etag(info.etag)
    if store.etag_is_md5 and etag:
        if is_md5_etag(etag):
            out.append(Claim("md5", etag, "etag"))
        elif "-" in etag:
            out.append(Claim(MULTIPART_ETAG, etag, "etag"))
    crc = _crc_hex(info.crc64)
    if crc is not None:
        out.append(Claim("crc64", crc, "native"))
    return out


def same_source_version(record_etag: object, record_modified: object, source: ObjectInfo) -> bool:
    """A recorded source version names ``source`` as listed now (ETag; without one, the modification time)."""
    if source.etag:
        return bool(record_etag) and normalize_etag(str(record_etag)) == normalize_etag(source.etag)
    return source.last_modified is not None and record_modified == source.last_modified.isoformat()


def manifest_claims(
    record: Mapping[str, Any] | None, source: ObjectInfo, replica: ObjectInfo
) -> tuple[list[Claim], list[Claim]]:
    """(source claims, replica claims) from the newest manifest record of this key, where it is tied."""
    if not record or record.get("size") != replica.size:
        return [], []
    values = []
    crc = _crc_hex(record.get("crc64"))
    if crc is not None:
        values.append(Claim("crc64", crc, "manifest"))
    md5 = normalize_etag(record.get("md5"))
    if is_md5_etag(md5):
        values.append(Claim("md5", md5, "manifest"))
    rep_tied = bool(replica.etag) and normalize_etag(record.get("dest_etag")) == normalize_etag(replica.etag)
    src_tied = record.get("size") == source.size and same_source_version(
        record.get("source_etag"), record.get("source_last_modified"), source
    )
    return (values if src_tied else []), (values if rep_tied else [])


def replica_metadata_claims(head: ObjectInfo, source: ObjectInfo) -> tuple[list[Claim], list[Claim]]:
    """(source claims, replica claims) from a replica's HEAD: native CRC64 and our copy-time metadata.

    The metadata belongs to the replica's current version (a rewrite replaces it); it describes the source's
    bytes only while it names the source's current ETag and size.
    """
    rep = listing_claims_of_head(head)
    src: list[Claim] = []
    meta = head.metadata
    crc = _crc_hex(meta.get(META_CRC64))
    if crc is not None and meta.get(META_SOURCE_SIZE) == str(head.size):
        claim = Claim("crc64", crc, "metadata")
        rep.append(claim)
        if meta.get(META_SOURCE_SIZE) == str(source.size) and same_source_version(
            meta.get(META_SOURCE_ETAG), None, source
        ):
            src.append(claim)
    return src, rep


def listing_claims_of_head(head: ObjectInfo) -> list[Claim]:
    """Only the native CRC64 of a HEAD: its ETag was already seen in the listing."""
    crc = _crc_hex(head.crc64)
    return [Claim("crc64", crc, "native")] if crc is not None else []


def source_head_claims(head: ObjectInfo) -> list[Claim]:
    """A source's HEAD: native CRC64, and our metadata when the source is itself a copy we made."""
    out = listing_claims_of_head(head)
    crc = _crc_hex(head.metadata.get(META_CRC64))
    if crc is not None and head.metadata.get(META_SOURCE_SIZE) == str(head.size):
        out.append(Claim("crc64", crc, "metadata"))
    return out


def decide(source: Iterable[Claim], replica: Iterable[Claim]) -> Verdict:
    """Compare every pair of claims of the same algorithm; any unequal pair is a mismatch."""
    src, rep = list(source), list(replica)
    first_match: Verdict | None = None
    for s in src:
        for r in rep:
            if s.algo != r.algo:
                continue
            method = f"{s.algo} ({s.via}/{r.via})" if s.via != r.via else f"{s.algo} ({s.via})"
            if s.value == r.value:
                first_match = first_match or Verdict("passed", method, s.value, r.value)
            elif s.algo != MULTIPART_ETAG:
                return Verdict("failed", method, f"{s.algo} {s.value} ({s.via})", f"{r.algo} {r.value} ({r.via})")
    return first_match or Verdict("none")


def has_algo(claims: Iterable[Claim], algo: str) -> bool:
    return any(c.algo == algo for c in claims)
