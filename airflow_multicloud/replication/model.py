"""Plain data passed between planning, copying, manifests, XCom and the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, Protocol

from airflow_multicloud.stores.base import ObjectStore
from airflow_multicloud.uri import folder_prefix

RESERVED_DIR = "_multicloud/"
META_CRC64 = "multicloud-crc64"
META_SOURCE_ETAG = "multicloud-source-etag"
META_SOURCE_SIZE = "multicloud-source-size"


class Mode(StrEnum):
    COPY = "copy"
    MIRROR = "mirror"


class PlanAction(StrEnum):
    """What the plan decided for one object at one destination."""

    COPY = "copy"
    SKIP = "skip"  # a verified copy of this exact source version is there already
    CONFLICT = "conflict"  # changed at the source, and overwrite='never'
    INVALID_KEY = "invalid-key"  # the destination would refuse the key: reported failed, no request made


class Overwrite(StrEnum):
    IF_CHANGED = "if_changed"
    NEVER = "never"


class SourceProof(StrEnum):
    """How the bytes read from the source were proven to be the source's bytes (a manifest's ``source_proof``).

    Every value but ``UNVERIFIED`` is a proof; ``UNVERIFIED`` only appears in manifests written before source
    proofs existed and never counts as verified.
    """

    MD5_ETAG = "source-md5"  # single-part upload: the ETag is the MD5 of the bytes
    CRC64 = "source-crc64"  # COS/OSS native whole-object CRC64-XZ
    S3_CHECKSUM = "source-s3-checksum"  # S3 full-object checksum (asked for with ChecksumMode=ENABLED)
    MULTIPART_ETAG = "source-multipart-etag"  # composite ETag recomputed with the source's own part layout
    RECORDED_CRC64 = "source-recorded-crc64"  # the CRC64 our own earlier verified copy stored in its metadata
    REREAD = "source-reread"  # nothing independent: a second read of the object hashed the same as the first
    LOCAL_STABLE = "source-local-stable"  # local file: same size/mtime/inode across the read, and a second hash
    UNVERIFIED = "source-unverified"


def parse_choice(enum: type[Enum], value: object, name: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in enum)
        raise ValueError(f"{name}={value!r} is not supported: use one of {choices}") from None


@dataclass(frozen=True)
class Location:
    """A dataset in a store: ``store`` plus a folder prefix.

    A prefix always names a folder: ``sales/2024`` is taken as ``sales/2024/``, so it never also matches
    ``sales/2024-old/...`` (every entry point, URIs included, builds a Location). "" is the whole bucket.
    """

    store: ObjectStore
    prefix: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", folder_prefix(self.prefix))

    @property
    def uri(self) -> str:
        return self.store.uri(self.prefix)

    def key(self, rel: str) -> str:
        return self.prefix + rel


@dataclass(frozen=True)
class SourceObject:
    rel: str  # key relative to the source prefix
    size: int
    etag: str | None
    last_modified: datetime | None
    crc64: int | None = None


@dataclass
class PlanEntry:
    """One source object and what to do at each destination (index -> action)."""

    obj: SourceObject
    actions: dict[int, PlanAction]
    reasons: dict[int, str] = field(default_factory=dict)  # why a destination refuses the key (INVALID_KEY)
    # destination index -> the earlier verified manifest record of this key there, carried forward by a skip
    previous: dict[int, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self.obj)
        d["last_modified"] = self.obj.last_modified.isoformat() if self.obj.last_modified else None
        out: dict[str, Any] = {"obj": d, "actions": {str(k): str(v) for k, v in self.actions.items()}}
        if self.reasons:
            out["reasons"] = {str(k): v for k, v in self.reasons.items()}
        if self.previous:
            out["previous"] = {str(k): v for k, v in self.previous.items()}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanEntry:
        o = dict(data["obj"])
        o["last_modified"] = datetime.fromisoformat(o["last_modified"]) if o["last_modified"] else None
        actions = {int(k): PlanAction(v) for k, v in data["actions"].items()}
        reasons = {int(k): v for k, v in data.get("reasons", {}).items()}
        return cls(SourceObject(**o), actions, reasons, {int(k): v for k, v in data.get("previous", {}).items()})


class Entries(Protocol):
    """What holds a plan's entries: a list, or an :class:`~.spool.EntrySpool` (iterable again and again)."""

    def append(self, entry: PlanEntry, /) -> None: ...
    def __iter__(self) -> Iterator[PlanEntry]: ...
    def __len__(self) -> int: ...


@dataclass
class Plan:
    """What a run will do. ``entries`` holds the objects with something to do or report at some destination
    (:func:`plan_copy` spools them to a temporary file, :class:`~.spool.EntrySpool`); an object skipped everywhere
    on the strength of an earlier manifest record is only counted (``skipped``), so a no-op rerun holds nothing per
    object. ``objects`` and ``bytes`` count every planned source object."""

    entries: Entries
    extras: dict[int, list[str]] = field(default_factory=dict)  # destination index -> rel keys absent at source
    reserved: list[str] = field(default_factory=list)  # source keys (relative) under a _multicloud/ folder: skipped
    unlisted: list[str] = field(default_factory=list)  # local entries not taken as objects (links, special files)
    skipped: dict[int, int] = field(default_factory=dict)  # destination index -> skips not kept as entries
    manifests: dict[int, list[str]] = field(default_factory=dict)  # destination index -> manifest keys listed
    objects: int = -1
    bytes: int = -1

    def __post_init__(self) -> None:
        # a plan rebuilt from its entries alone (a shard) holds every object it plans
        if self.objects < 0:
            self.objects = len(self.entries)
        if self.bytes < 0:
            self.bytes = sum(e.obj.size for e in self.entries)

    def count(self, action: str) -> int:
        from airflow_multicloud.replication.spool import EntrySpool  # spool imports this module

        held = sum(self.skipped.values()) if action == PlanAction.SKIP else 0
        if isinstance(self.entries, EntrySpool):  # counted as it was written: no read of the file
            return held + self.entries.actions[action]
        return held + sum(1 for e in self.entries for a in e.actions.values() if a == action)

    @property
    def to_copy(self) -> list[PlanEntry]:
        """Entries with work for a copy task: copies to make, and invalid keys it must report as failed."""
        work = (PlanAction.COPY, PlanAction.INVALID_KEY)
        return [e for e in self.entries if any(a in work for a in e.actions.values())]

    def shard(self, n: int) -> list[list[PlanEntry]]:
        """Split the work into ``n`` shards of about equal bytes (largest first, greedy)."""
        if n < 1:
            raise ValueError(f"shards={n} must be at least 1")
        shards: list[list[PlanEntry]] = [[] for _ in range(n)]
        loads = [0] * n
        for entry in sorted(self.to_copy, key=lambda e: e.obj.size, reverse=True):
            i = loads.index(min(loads))
            shards[i].append(entry)
            loads[i] += entry.obj.size + 1
        return shards


@dataclass
class ObjectResult:
    rel: str
    destination: int
    status: str  # copied | skipped | failed | conflict
    size: int
    crc64: str | None = None
    md5: str | None = None
    dest_etag: str | None = None
    verified_by: list[str] = field(default_factory=list)
    error: str | None = None
    attempts: int = 0
    source_proof: str | None = None  # a SourceProof value: how the bytes read were proven the source's
    dest_last_modified: str | None = None  # ISO time of the replica, where proving the write told it


#: entries of each per-object list a summary's JSON keeps (XCom holds it: it must not grow with the dataset)
LISTED = 100


@dataclass
class RunSummary:
    run_id: str
    source: str
    destinations: list[str]
    objects: int = 0
    bytes: int = 0
    copied: int = 0
    copied_bytes: int = 0
    skipped: int = 0
    failed: int = 0
    conflicts: int = 0
    deleted: int = 0
    duration_s: float = 0.0
    throughput_mb_s: float = 0.0
    failed_keys: list[str] = field(default_factory=list)
    conflict_keys: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    invalid_keys: list[str] = field(default_factory=list)  # "uri (reason)": keys a destination would refuse
    reserved_skipped: int = 0  # source objects under a _multicloud/ folder, never copied
    unlisted: list[str] = field(default_factory=list)  # local entries skipped by name (links, special files)
    per_destination: list[dict[str, Any]] = field(default_factory=list)  # copied/skipped/... for each destination
    unfinished_uploads: list[str] = field(default_factory=list)  # left-over uploads found before the run
    dry_run: bool = False
    locked: int = 0  # objects a retention lock kept: mirror deletes skipped, overwrites refused
    retention: list[dict[str, Any]] = field(default_factory=list)  # per destination: lock, mode, who can delete
    cost: dict[str, Any] = field(default_factory=dict)  # the estimate made before copying (replication/cost.py)
    first_copy_s: float | None = None  # seconds from the run's start to its first copy (None: nothing copied)

    def to_json(self) -> dict[str, Any]:
        """The summary for XCom and the CLI: each per-object list keeps its first :data:`LISTED` entries, and
        ``<name>_total`` then says how many there were (the manifests hold every object)."""
        out = asdict(self)
        for name in ("failed_keys", "conflict_keys", "invalid_keys", "unlisted", "unfinished_uploads"):
            if len(out[name]) > LISTED:
                out[f"{name}_total"] = len(out[name])
                out[name] = out[name][:LISTED]
        return out
