"""Write-once retention for the local COS and OSS servers: what the clouds refuse while an object is retained.

COS keeps retention per object (object lock: enabled per bucket, never disabled; a date per object set on upload,
by the bucket's default, or by PUT Object Retention, and only ever extended). OSS keeps it per bucket (WORM:
InitiateBucketWorm -> InProgress, CompleteBucketWorm -> Locked, ExtendBucketWorm; every object is retained
for the period from its last modification). The state is a JSON file beside the buckets, so a restarted
server still refuses what it refused before.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

DAY = 86400.0


class RetentionRefused(Exception):
    """A delete or overwrite of a retained object; ``until`` is when the retention ends (epoch seconds)."""

    def __init__(self, bucket: str, key: str, until: float) -> None:
        super().__init__(f"{bucket}/{key} is retained until {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(until))}")
        self.until = until


@dataclass
class Worm:
    worm_id: str
    days: int
    created: float
    state: str = "InProgress"  # InProgress (may be aborted, protects already) -> Locked


@dataclass
class _State:
    object_lock: dict[str, int] = field(default_factory=dict)  # COS bucket -> default days (0: none)
    worms: dict[str, Worm] = field(default_factory=dict)  # OSS bucket -> WORM policy
    retained: dict[str, dict[str, list[object]]] = field(default_factory=dict)  # bucket -> key -> [mode, until]


class LockRegistry:
    """Object lock and WORM state of one server's buckets. Thread-safe."""

    def __init__(self, root: Path) -> None:
        self._path = root / ".locks.json"
        self._lock = threading.Lock()
        self._state = _State()
        self.pending: dict[str, tuple[str, float]] = {}  # multipart upload id -> retention asked at initiation
        if self._path.exists():
            raw = json.loads(self._path.read_text())
            worms = {b: Worm(**w) for b, w in raw.get("worms", {}).items()}
            self._state = _State(raw.get("object_lock", {}), worms, raw.get("retained", {}))

    def _save(self) -> None:
        state = self._state
        data = {"object_lock": state.object_lock, "retained": state.retained}
        data["worms"] = {b: asdict(w) for b, w in state.worms.items()}
        self._path.write_text(json.dumps(data))

    # ---- COS object lock --------------------------------------------------------------------------------
    def enable_object_lock(self, bucket: str, default_days: int) -> None:
        with self._lock:
            self._state.object_lock[bucket] = default_days
            self._save()

    def object_lock(self, bucket: str) -> int | None:
        """None when object lock is off; else the default retention in days (0: no default)."""
        return self._state.object_lock.get(bucket)

    def retain(self, bucket: str, key: str, mode: str, until: float) -> None:
        """Set or extend an object's retention; a shorter date than the one it has is refused (ValueError)."""
        with self._lock:
            current = self._state.retained.get(bucket, {}).get(key)
            if current is not None and until < float(current[1]):  # type: ignore[arg-type]
                raise ValueError("the retention period of a locked object can only be extended")
            self._state.retained.setdefault(bucket, {})[key] = [mode, until]
            self._save()

    def retention(self, bucket: str, key: str) -> tuple[str, float] | None:
        found = self._state.retained.get(bucket, {}).get(key)
        return (str(found[0]), float(found[1])) if found else None  # type: ignore[arg-type]

    def forget(self, bucket: str, key: str) -> None:
        """The object is gone (deleted after its retention ended): its old date must not guard a new one."""
        with self._lock:
            if self._state.retained.get(bucket, {}).pop(key, None) is not None:
                self._save()

    # ---- OSS WORM ---------------------------------------------------------------------------------------
    def initiate_worm(self, bucket: str, days: int) -> Worm:
        with self._lock:
            worm = Worm(uuid.uuid4().hex[:16].upper(), days, time.time())
            self._state.worms[bucket] = worm
            self._save()
            return worm

    def worm(self, bucket: str) -> Worm | None:
        return self._state.worms.get(bucket)

    def update_worm(self, bucket: str, *, state: str | None = None, days: int | None = None) -> None:
        with self._lock:
            worm = self._state.worms[bucket]
            worm.state = state or worm.state
            worm.days = days or worm.days
            self._save()

    def abort_worm(self, bucket: str) -> None:
        with self._lock:
            self._state.worms.pop(bucket, None)
            self._save()

    # ---- the guard every delete and overwrite passes ------------------------------------------------------
    def guard(self, bucket: str, key: str, last_modified: float | None, now: float | None = None) -> None:
        """Raise RetentionRefused when the existing object ``key`` (modified at ``last_modified``) is retained."""
        if last_modified is None:
            return
        now = time.time() if now is None else now
        found = self.retention(bucket, key)
        if found is not None and found[1] > now:
            raise RetentionRefused(bucket, key, found[1])
        worm = self.worm(bucket)
        if worm is not None and last_modified + worm.days * DAY > now:
            raise RetentionRefused(bucket, key, last_modified + worm.days * DAY)
