"""The fault matrix: 1,000 objects of mixed sizes, copied in several directions while ~10% of requests fail.

Every kind of fault the servers inject (5xx answers, connections reset while sending or receiving, truncated and
flipped bodies, flipped request bytes, latency) hits the object and multipart requests at random. Each run must
end (a hard timeout turns a hang into a failure) with every replica byte-identical to its source, or fail naming
exactly the objects that are not; and no unfinished upload may be left on any destination.

Listings are not faulted: a listing that fails ends the run before anything is written, which tells nothing
about copies.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from airflow_multicloud.replication import copy as copy_module
from airflow_multicloud.replication.copy import CopyOptions
from airflow_multicloud.replication.engine import ReplicationError, ReplicationOptions, replicate
from airflow_multicloud.replication.model import RESERVED_DIR, Location, RunSummary
from airflow_multicloud.stores.base import TransferConfig
from airflow_multicloud.stores.local import LocalStore
from multicloud_testbed.cos_limits import CosLimits

PART = 128 * 1024  # above OSS's 100 KiB minimum part size
PARTS = TransferConfig(multipart_threshold=2 * PART, part_size=PART, max_concurrency=2)
OBJECTS_PER_DIRECTION = 250
DIRECTIONS = [("s3", ["cos", "oss"]), ("cos", ["s3"]), ("oss", ["file"]), ("file", ["s3"])]
#: object and multipart requests of each cloud (the names its server logs them by)
REQUESTS = {
    "s3": ("GetObject", "HeadObject", "PutObject", "CreateMultipartUpload", "UploadPart", "ListParts"),
    "cos": ("GetObject", "HeadObject", "PutObject", "InitiateMultipartUpload", "UploadPart", "ListParts"),
    "oss": ("GetObject", "HeadObject", "PutObject", "InitiateMultipartUpload", "UploadPart", "ListParts"),
}
COMMON = ("CompleteMultipartUpload", "AbortMultipartUpload", "ListMultipartUploads")
#: (kind, rate, extra) per request: about one request in ten meets one of them, whatever its kind
FAULTS: list[tuple[str, float, dict[str, Any]]] = [
    ("status", 0.02, {"status": 503, "code": "SlowDown"}),
    ("status", 0.01, {"status": 500, "code": "InternalError"}),
    ("reset", 0.02, {}),
    ("truncate", 0.02, {}),
    ("flip", 0.02, {}),
    ("reset_request", 0.015, {}),
    ("flip_request", 0.015, {}),
    ("latency", 0.02, {"latency": 0.02}),
]


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch, services: dict[str, Any]) -> TransferConfig:
    """Parts of 128 KiB on every cloud, the minimum part sizes of moto and of our COS server lowered for them; the
    tee as deep in parts as in production (see test_no_hang.py)."""
    monkeypatch.setattr("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", 100 * 1024)
    monkeypatch.setattr(services["cos"].server, "limits", CosLimits(min_part_size=100 * 1024))
    monkeypatch.setattr(copy_module, "TEE_BYTES", 2 * PART)
    return PARTS


def dataset(rng: random.Random, n: int) -> dict[str, bytes]:
    """Mostly a few KiB; a handful around and above the multipart threshold (1 to 10 parts)."""
    sizes = [0, PARTS.multipart_threshold - 1, 2 * PART, 4 * PART - 1, 4 * PART + 1, 10 * PART - PART // 3]
    sizes += [rng.randint(1, 8 * 1024) for _ in range(n - len(sizes))]
    return {f"day={i % 7}/obj-{i:04d}.bin": os.urandom(size) for i, size in enumerate(sizes)}


def location(services: dict[str, Any], cloud: str, tmp_path: Path, transfer: TransferConfig) -> Location:
    if cloud == "file":
        root = tmp_path / f"file-{len(list(tmp_path.iterdir()))}"
        root.mkdir()
        return Location(LocalStore(str(root), transfer=transfer), "ds/")
    svc = services[cloud]
    return Location(svc.store(svc.create_bucket(), transfer=transfer), "ds/")


def inject(svc: Any, cloud: str, multipart: list[str]) -> None:
    """The random faults, plus one flipped byte in the first read of each multipart object: its composite ETag
    is no MD5 of the bytes, so only a real source proof catches that one."""
    for key in multipart:
        svc.faults.add("flip", operation="GetObject", key=key, times=1)
    for op in (*REQUESTS[cloud], *COMMON):
        for kind, rate, extra in FAULTS:
            svc.faults.add(kind, rate=rate, operation=op, **extra)


def failed_objects(summary: RunSummary, dests: list[Location], rels: list[str]) -> set[tuple[int, str]]:
    """(destination, key) of every object the summary names as failed; anything else named must be a manifest."""
    by_uri = {d.store.uri(d.key(rel)): (i, rel) for i, d in enumerate(dests) for rel in rels}
    named = set()
    for entry in summary.failed_keys:
        uri = entry.split(" (", 1)[0]
        if uri in by_uri:
            named.add(by_uri[uri])
        else:
            assert entry.startswith("manifest for "), f"the summary names something that is not an object: {entry}"
    return named


@pytest.mark.slow
@pytest.mark.timeout(170, method="thread")
@pytest.mark.parametrize(("src", "dsts"), DIRECTIONS, ids=[f"{s}-to-{'+'.join(d)}" for s, d in DIRECTIONS])
def test_faulted_run_ends_with_identical_replicas_or_names_the_others(
    clean_services: dict[str, Any], small_parts: TransferConfig, tmp_path: Path, src: str, dsts: list[str]
) -> None:
    rng = random.Random(f"{src}->{dsts}")
    files = dataset(rng, OBJECTS_PER_DIRECTION)
    source = location(clean_services, src, tmp_path, small_parts)
    for rel, data in files.items():
        source.store.write(source.key(rel), [data])
    dests = [location(clean_services, d, tmp_path, small_parts) for d in dsts]
    faulted = [clean_services[c] for c in {src, *dsts} if c != "file"]
    multipart = [source.key(rel) for rel, data in files.items() if len(data) >= PARTS.multipart_threshold]
    for svc in faulted:
        inject(svc, svc.name, multipart if svc.name == src else [])

    options = ReplicationOptions(copy=CopyOptions(object_retries=3, retry_backoff=0.01), progress_interval=0)
    try:
        summary = replicate(source, dests, options)
    except ReplicationError as exc:
        summary = exc.summary
    fired = Counter(rule.kind for svc in faulted for rule in svc.faults.rules for _ in range(rule.fired))
    for svc in faulted:
        svc.faults.clear()

    rels = sorted(files)
    named = failed_objects(summary, dests, rels)
    wrong = set()
    for d, dest in enumerate(dests):
        have = {
            o.key[len(dest.prefix) :]
            for o in dest.store.list(dest.prefix)
            if not o.key[len(dest.prefix) :].startswith(RESERVED_DIR)
        }
        for rel in rels:
            same = rel in have and b"".join(dest.store.read(dest.key(rel))) == b"".join(
                source.store.read(source.key(rel))
            )
            if not same:
                wrong.add((d, rel))
    assert wrong <= named, f"replicas that differ from the source but are not named as failed: {sorted(wrong - named)}"
    assert summary.copied == len(rels) * len(dests) - len(named), "every object not named failed was copied"
    assert len(named) <= len(rels) * len(dests) // 20, f"retries should carry almost every object: {sorted(named)}"
    for dest in dests:
        assert list(dest.store.list_multipart_uploads("")) == [], f"unfinished upload left on {dest.uri}"
    assert len(fired) >= 4 and sum(fired.values()) >= 20, f"the faults must have hit the run: {fired}"
