"""When is a dataset partition ready? The one check shared by DatasetPartitionSensor (poke mode, on a worker)
and DatasetPartitionTrigger (deferred, in the triggerer), so both modes decide and report the same way.

No Airflow imports: the check is plain code over an :class:`ObjectStore`, and its state is JSON so the trigger
can carry it in its serialized kwargs.
"""

from __future__ import annotations

import fnmatch
import hashlib
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_multicloud.errors import BucketNotFoundError, StoreError

if TYPE_CHECKING:
    from airflow_multicloud.replication.model import Location
    from airflow_multicloud.stores.base import ObjectInfo


class PartitionSensorError(StoreError):
    """The partition could not be checked (wrong connection, missing bucket, denied): waiting will not help."""


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def validate_readiness(marker: str | None, glob: str | None, stable_for: float | None, min_objects: int) -> str:
    """The readiness kind (``marker``, ``glob`` or ``stable_for``); ValueError naming the arguments otherwise.

    Called from the sensor's constructor, so a wrong combination fails when the DAG is parsed.
    """
    values = (("marker", marker), ("glob", glob), ("stable_for", stable_for))
    given = [name for name, value in values if value is not None]
    if len(given) != 1:
        got = ", ".join(f"{n}=..." for n in given) if given else "none of them"
        raise ValueError(
            f"DatasetPartitionSensor needs exactly one of marker=, glob= or stable_for= (got {got}): "
            'e.g. marker="_SUCCESS", glob="*.parquet" with min_objects=, or stable_for=300'
        )
    if marker is not None and (not marker or marker.startswith("/") or marker.endswith("/")):
        raise ValueError(f"marker={marker!r} must be an object name relative to the partition, e.g. '_SUCCESS'")
    if glob is not None and not glob:
        raise ValueError("glob='' matches nothing: give a pattern such as '*.parquet', or use marker=/stable_for=")
    if min_objects < 1:
        raise ValueError(f"min_objects={min_objects} must be at least 1")
    if stable_for is not None and stable_for <= 0:
        raise ValueError(f"stable_for={stable_for} must be a positive number of seconds")
    return given[0]


@dataclass
class StableState:
    """What ``stable_for`` remembers between checks: a digest of the last listing (keys, sizes, etags) and when it
    last changed (epoch seconds, so it survives the hand-over from the worker to the triggerer)."""

    digest: str | None = None
    count: int = 0
    total_bytes: int = 0
    changed_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> StableState:
        return cls(**data) if data else cls()


@dataclass
class CheckResult:
    """One look at the partition. ``message`` says what was awaited and what was seen."""

    ready: bool
    message: str
    keys: list[str] = field(default_factory=list)  # relative to the partition prefix
    total_bytes: int = 0

    def xcom(self, uri: str) -> dict[str, Any]:
        return {"uri": uri, "keys": self.keys, "count": len(self.keys), "total_bytes": self.total_bytes}


@dataclass
class PartitionCheck:
    """The readiness rule for one partition.

    :param uri: the partition URI as given (used in messages); the store prefix is taken as a folder.
    :param marker: an object name relative to the prefix that must exist (e.g. ``_SUCCESS``).
    :param glob: ``fnmatch`` pattern on keys relative to the prefix (``*`` also matches ``/``); ready when at least
        ``min_objects`` keys match.
    :param stable_for: seconds the listing must stay unchanged (and non-empty) to count as ready.
    """

    uri: str
    marker: str | None = None
    glob: str | None = None
    min_objects: int = 1
    stable_for: float | None = None
    state: StableState = field(default_factory=StableState)

    def __post_init__(self) -> None:
        self.kind = validate_readiness(self.marker, self.glob, self.stable_for, self.min_objects)

    @property
    def awaited(self) -> str:
        base = self.uri if self.uri.endswith("/") else self.uri + "/"
        if self.kind == "marker":
            return f"{base}{self.marker}"
        if self.kind == "glob":
            return f"{self.min_objects} object(s) matching {self.glob!r} under {base}"
        return f"{base} to stay unchanged for {self.stable_for:g}s"

    def check(self, loc: Location, now: float | None = None) -> CheckResult:
        """List the partition once and decide. Retryable store errors (throttling, 5xx, resets) count as
        "not ready yet", so a flaky minute does not fail a sensor that waits for hours; other store errors
        (denied, no bucket) raise :class:`PartitionSensorError`."""
        from airflow_multicloud.replication.plan import list_dataset

        now = time.time() if now is None else now
        prefix = loc.prefix  # a folder already: Location applies uri.folder_prefix
        try:
            objects = [(o.key[len(prefix) :], o.size, _version(o)) for o in list_dataset(loc)]
        except BucketNotFoundError:
            if loc.store.scheme != "file":
                raise PartitionSensorError(f"cannot check {self.awaited}: the bucket does not exist") from None
            objects = []  # a local partition folder that upstream has not created yet: nothing seen so far
        except StoreError as exc:
            if exc.retryable:
                return CheckResult(False, f"waiting for {self.awaited}: listing failed ({exc}), will retry")
            raise PartitionSensorError(f"cannot check {self.awaited}: {exc}") from exc
        if self.kind == "marker":
            return self._check_marker(objects)
        if self.kind == "glob":
            return self._check_glob(objects)
        return self._check_stable(objects, now)

    def _check_marker(self, objects: list[tuple[str, int, str]]) -> CheckResult:
        data = [(rel, size) for rel, size, _ in objects if rel != self.marker]
        total = sum(size for _, size in data)
        seen = f"{len(data)} objects seen ({human_bytes(total)})"
        if len(data) == len(objects):
            return CheckResult(False, f"waiting for {self.awaited}: {seen}, no marker yet")
        return CheckResult(True, f"{self.awaited} found; {seen} besides it", [r for r, _ in data], total)

    def _check_glob(self, objects: list[tuple[str, int, str]]) -> CheckResult:
        assert self.glob is not None
        hits = [(rel, size) for rel, size, _ in objects if fnmatch.fnmatchcase(rel, self.glob)]
        total = sum(size for _, size in hits)
        seen = f"{len(hits)} match ({human_bytes(total)}) of {len(objects)} objects seen"
        if len(hits) < self.min_objects:
            return CheckResult(False, f"waiting for {self.awaited}: {seen}")
        return CheckResult(True, f"ready: {self.awaited}: {seen}", [r for r, _ in hits], total)

    def _check_stable(self, objects: list[tuple[str, int, str]], now: float) -> CheckResult:
        assert self.stable_for is not None
        digest = listing_digest(objects)
        total = sum(size for _, size, _ in objects)
        old = self.state
        if digest != old.digest:
            # first look, or something was added, removed, rewritten: the quiet period starts again now
            self.state = StableState(digest, len(objects), total, now)
            if old.digest is None:
                change = "first listing"
            else:
                change = f"listing changed ({old.count} -> {len(objects)} objects, {human_bytes(old.total_bytes)}"
                change += f" -> {human_bytes(total)})"
            return CheckResult(False, f"waiting for {self.awaited}: {change}, {len(objects)} objects seen")
        if not objects:
            return CheckResult(False, f"waiting for {self.awaited}: no objects yet")
        quiet = now - old.changed_at
        seen = f"{len(objects)} objects ({human_bytes(total)}) unchanged for {quiet:.0f}s"
        if quiet < self.stable_for:
            return CheckResult(False, f"waiting for {self.awaited}: {seen}")
        return CheckResult(True, f"ready: {self.awaited}: {seen}", [rel for rel, _, _ in objects], total)


def listing_digest(objects: list[tuple[str, int, str]]) -> str:
    """A fixed-size fingerprint of a listing, so the trigger's kwargs stay small for big partitions."""
    h = hashlib.sha256()
    for rel, size, etag in sorted(objects):
        h.update(f"{rel}\0{size}\0{etag}\n".encode())
    return h.hexdigest()


def _version(info: ObjectInfo) -> str:
    """What changes when an object is rewritten: its ETag, or its modification time where there is none (files)."""
    if info.etag:
        return info.etag
    return info.last_modified.isoformat() if info.last_modified else ""
