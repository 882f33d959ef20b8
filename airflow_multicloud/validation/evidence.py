"""Checksum evidence for the ``quick`` level: what listings, manifests and HEADs say about an object's bytes.

Each side of a comparison (source, replica) collects :class:`Claim` s: "these bytes have CRC64 X / MD5 Y",
each saying where it came from. A claim only counts when it is tied to the object's *current* version and is
independent of the other side: an ETag or a native CRC64 is (the store computes it). A copy-time manifest
record counts only when the copy proved the bytes it read were the source's (its ``source_proof``) and the
replica is still the version it wrote (size, ETag and, where recorded, last-modified); otherwise the CRC64 it
holds was only ever compared with itself. Our copy-time metadata vouches for the source under the same proof.
Two sides agree when some algorithm has claims on both sides and every such pair is equal; one unequal pair is
a mismatch. No common algorithm: unverified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_multicloud.replication.model import META_CRC64, META_SOURCE_ETAG, META_SOURCE_SIZE, SourceProof
from airflow_multicloud.stores.base import ObjectInfo, ObjectStore, is_md5_etag, normalize_etag

# A multipart ETag (MD5 of part MD5s + "-N") depends on the part sizes: equal ones prove equal bytes,
# unequal ones prove nothing, so they never count as a mismatch.
MULTIPART_ETAG = "multipart-etag"

ALGO_WORDS = {"crc64": "CRC64", "md5": "MD5", MULTIPART_ETAG: "multipart ETag"}
STORE_WORDS = {"s3": "S3", "cos": "COS", "oss": "OSS", "file": "local file"}
PROOF_WORDS = {
    SourceProof.MD5_ETAG: "MD5 ETag",
    SourceProof.CRC64: "native CRC64",
    SourceProof.S3_CHECKSUM: "S3 full-object checksum",
    SourceProof.MULTIPART_ETAG: "multipart ETag with its part layout",
    SourceProof.RECORDED_CRC64: "CRC64 recorded by an earlier verified copy",
    SourceProof.REREAD: "a second read hashing the same",
    SourceProof.LOCAL_STABLE: "local file unchanged across the read",
}


@dataclass(frozen=True)
class Claim:
    """``algo`` ("crc64", "md5" or "multipart-etag") of the bytes is ``value`` (lower-case hex), says ``via``.

    ``words`` say where the value comes from for a reader of the report ("COS native", "source proven by MD5
    ETag").
    """

    algo: str
    value: str
    via: str
    words: str = ""


@dataclass(frozen=True)
class Verdict:
    """``status`` is "passed", "failed" or "none" (nothing comparable); values are the first deciding pair.

    ``evidence`` is the deciding pair in words, e.g. "MD5 ETag equal on both sides".
    """

    status: str
    method: str = ""
    source_value: str | None = None
    replica_value: str | None = None
    evidence: str = ""


@dataclass(frozen=True)
class ManifestEvidence:
    """What a manifest record adds to each side, and (``note``) why it adds nothing where it does not count."""

    source: list[Claim]
    replica: list[Claim]
    note: str = ""


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


def store_words(store: ObjectStore) -> str:
    return STORE_WORDS.get(store.scheme, store.scheme)


def listing_claims(store: ObjectStore, info: ObjectInfo) -> list[Claim]:
    """Claims a listing entry (or a HEAD) carries without user metadata: ETag and native CRC64."""
    out: list[Claim] = []
    etag = normalize_etag(info.etag)
    if store.etag_is_md5 and etag:
        if is_md5_etag(etag):
            out.append(Claim("md5", etag, "etag", f"{store_words(store)} MD5 ETag"))
        elif "-" in etag:
            out.append(Claim(MULTIPART_ETAG, etag, "etag", f"{store_words(store)} multipart ETag"))
    crc = _crc_hex(info.crc64)
    if crc is not None:
        out.append(Claim("crc64", crc, "native", f"{store_words(store)} native"))
    return out


def same_source_version(record_etag: object, record_modified: object, source: ObjectInfo) -> bool:
    """A recorded source version names ``source`` as listed now (ETag; without one, the modification time)."""
    if source.etag:
        return bool(record_etag) and normalize_etag(str(record_etag)) == normalize_etag(source.etag)
    return source.last_modified is not None and record_modified == source.last_modified.isoformat()


def source_proof(record: Mapping[str, Any] | None) -> SourceProof | None:
    """How the copy that wrote ``record`` proved the source's bytes; None when it did not (or cannot say).

    Manifests written before ``source_proof`` existed say it as the first ``source-...`` entry of ``verified_by``.
    """
    if not record:
        return None
    raw = record.get("source_proof")
    if raw is None:
        raw = next((v for v in record.get("verified_by") or () if isinstance(v, str) and v.startswith("source-")), None)
    try:
        proof = SourceProof(str(raw))
    except ValueError:
        return None
    return None if proof is SourceProof.UNVERIFIED else proof


def _same_second(recorded: object, now: datetime | None) -> bool:
    """Listings give milliseconds, HEADs whole seconds: the same version may be either."""
    if not isinstance(recorded, str) or now is None:
        return False
    try:
        then = datetime.fromisoformat(recorded)
    except ValueError:
        return False
    if (then.tzinfo is None) != (now.tzinfo is None):
        return False
    return then.replace(microsecond=0) == now.replace(microsecond=0)


def replica_changed(record: Mapping[str, Any], replica: ObjectInfo) -> str:
    """What differs between the replica the record describes and ``replica`` as listed now ("" if nothing)."""
    if record.get("size") != replica.size:
        return "size"
    if not replica.etag or normalize_etag(record.get("dest_etag")) != normalize_etag(replica.etag):
        return "ETag"
    recorded = record.get("dest_last_modified")
    if recorded is not None and not _same_second(recorded, replica.last_modified):
        return "last-modified"
    return ""


def recorded_values(record: Mapping[str, Any], words: str) -> list[Claim]:
    out = []
    crc = _crc_hex(record.get("crc64"))
    if crc is not None:
        out.append(Claim("crc64", crc, "manifest", words))
    md5 = normalize_etag(record.get("md5"))
    if is_md5_etag(md5):
        out.append(Claim("md5", md5, "manifest", words))
    return out


def manifest_replica_claims(record: Mapping[str, Any] | None, replica: ObjectInfo) -> list[Claim]:
    """What the record says the replica's bytes are, while the replica is still the version it wrote."""
    if not record or replica_changed(record, replica):
        return []
    return recorded_values(record, "replica unchanged since")


def manifest_claims(record: Mapping[str, Any] | None, source: ObjectInfo, replica: ObjectInfo) -> ManifestEvidence:
    """What the newest manifest record of this key says for each side, where it counts (module docstring)."""
    if not record:
        return ManifestEvidence([], [])
    proof = source_proof(record)
    if proof is None:
        said = record.get("source_proof") or next(iter(record.get("verified_by") or ()), "nothing")
        return ManifestEvidence([], [], f"copy-time manifest not counted: the copy never proved the source ({said})")
    changed = replica_changed(record, replica)
    if changed:
        return ManifestEvidence([], [], f"copy-time manifest not counted: the replica changed since ({changed})")
    tie = "ETag, size" if record.get("dest_last_modified") is None else "ETag, size, last-modified"
    rep = recorded_values(record, f"replica unchanged since ({tie})")
    src_tied = record.get("size") == source.size and same_source_version(
        record.get("source_etag"), record.get("source_last_modified"), source
    )
    if not src_tied:
        return ManifestEvidence([], rep, "copy-time manifest describes another source version")
    return ManifestEvidence(recorded_values(record, f"source proven by {PROOF_WORDS[proof]}"), rep)


def replica_metadata_claims(
    store: ObjectStore, head: ObjectInfo, source: ObjectInfo, proof: SourceProof | None
) -> tuple[list[Claim], list[Claim]]:
    """(source claims, replica claims) from a replica's HEAD: native CRC64 and our copy-time metadata.

    The metadata belongs to the replica's current version (a rewrite replaces it). It describes the source's
    bytes only while it names the source's current ETag and size, and only if the copy proved what it read
    (``proof``, from the copy's manifest record): else its CRC64 is of bytes never compared with the source.
    """
    rep = listing_claims_of_head(store, head)
    src: list[Claim] = []
    meta = head.metadata
    crc = _crc_hex(meta.get(META_CRC64))
    if crc is not None and meta.get(META_SOURCE_SIZE) == str(head.size):
        rep.append(Claim("crc64", crc, "metadata", "copy-time metadata of the replica"))
        if (
            proof is not None
            and meta.get(META_SOURCE_SIZE) == str(source.size)
            and same_source_version(meta.get(META_SOURCE_ETAG), None, source)
        ):
            src.append(Claim("crc64", crc, "metadata", f"copy-time metadata, source proven by {PROOF_WORDS[proof]}"))
    return src, rep


def listing_claims_of_head(store: ObjectStore, head: ObjectInfo) -> list[Claim]:
    """Only the native CRC64 of a HEAD: its ETag was already seen in the listing."""
    crc = _crc_hex(head.crc64)
    return [Claim("crc64", crc, "native", f"{store_words(store)} native")] if crc is not None else []


def source_head_claims(store: ObjectStore, head: ObjectInfo) -> list[Claim]:
    """A source's HEAD: native CRC64, and our metadata when the source is itself a copy we made."""
    out = listing_claims_of_head(store, head)
    crc = _crc_hex(head.metadata.get(META_CRC64))
    if crc is not None and head.metadata.get(META_SOURCE_SIZE) == str(head.size):
        out.append(Claim("crc64", crc, "metadata", "the source's own copy-time metadata"))
    return out


def in_words(s: Claim, r: Claim) -> str:
    """The evidence an equal pair gives, for a reader of the report."""
    if s.via == r.via == "manifest":
        return f"copy-time manifest: {s.words}, {r.words}"
    if s.via == r.via == "etag":
        return "MD5 ETag equal on both sides" if s.algo == "md5" else "multipart ETag equal on both sides (same parts)"

    def side(c: Claim) -> str:
        return f"copy-time manifest, {c.words}" if c.via == "manifest" else c.words

    return f"{ALGO_WORDS[s.algo]} of source ({side(s)}) = replica ({side(r)})"


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
                first_match = first_match or Verdict("passed", method, s.value, r.value, in_words(s, r))
            elif s.algo != MULTIPART_ETAG:
                return Verdict("failed", method, f"{s.algo} {s.value} ({s.via})", f"{r.algo} {r.value} ({r.via})")
    return first_match or Verdict("none")


def has_algo(claims: Iterable[Claim], algo: str) -> bool:
    return any(c.algo == algo for c in claims)
