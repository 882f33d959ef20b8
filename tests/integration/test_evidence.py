"""Quick validation counts a copy-time manifest only where it proves the source and still names the replica.

Real replication runs write the manifests (the SDKs against the local S3, COS and OSS servers); the tests then
change them the way a user's history would: a manifest from a copy that never proved the source, a rerun that
skipped everything.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from airflow_multicloud.replication.copy import CopyOptions
from airflow_multicloud.replication.engine import ReplicationOptions, replicate
from airflow_multicloud.replication.manifest import manifest_prefix, read_manifest
from airflow_multicloud.replication.model import Location, SourceProof
from airflow_multicloud.stores.base import MiB, TransferConfig
from airflow_multicloud.validation.compare import compare_replicas

BIG = TransferConfig(multipart_threshold=64 * MiB, part_size=8 * MiB)  # 6 MiB: one PUT, an MD5 ETag
SMALL = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB, max_concurrency=2)
OTHER_PARTS = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB + 1)  # multipart ETags differ from SMALL's


def opts() -> ReplicationOptions:
    return ReplicationOptions(progress_interval=0, copy=CopyOptions(object_retries=1, retry_backoff=0.01))


def bucket(services: dict[str, Any], name: str, transfer: TransferConfig) -> Location:
    svc = services[name]
    return Location(svc.store(svc.create_bucket(), transfer=transfer), "ds/")


def rewrite_manifests(loc: Location, change: Callable[[dict[str, Any]], None]) -> int:
    """Apply ``change`` to every object record of every manifest of ``loc`` (the run's and the consolidated one);
    return how many keys it saw."""
    seen: set[str] = set()
    for info in list(loc.store.list(manifest_prefix(loc))):
        header, records = read_manifest(loc.store, info.key)
        lines = [header]
        for rec in records:
            change(rec)
            seen.add(rec["key"])
            lines.append(rec)
        loc.store.write(info.key, [gzip.compress(("\n".join(json.dumps(x) for x in lines) + "\n").encode())])
    return len(seen)


def says_unverified(rec: dict[str, Any]) -> None:
    """What a manifest from a copy that could not prove the source's bytes says."""
    rec["source_proof"] = SourceProof.UNVERIFIED.value
    rec["verified_by"] = [SourceProof.UNVERIFIED.value, *(v for v in rec["verified_by"] if v.startswith("crc"))]


def test_manifest_of_a_copy_that_never_proved_the_source_is_not_evidence(clean_services: dict[str, Any]) -> None:
    # an S3 multipart source: no MD5 ETag, no CRC64; the replica's COS CRC64 compares with nothing but the manifest
    # (its parts are larger than the replica's: the copy cannot keep them, so the two multipart ETags differ)
    source = bucket(clean_services, "s3", OTHER_PARTS)
    source.store.write(source.key("big.bin"), [os.urandom(6 * MiB)])
    replica = bucket(clean_services, "cos", SMALL)
    replicate(source, [replica], opts())
    assert rewrite_manifests(replica, says_unverified) == 1

    report = compare_replicas(source, [replica])
    rep = report.replicas[0]
    assert not report.ok, report.table()
    assert (rep.passed, rep.unverified) == (0, 1) and rep.evidence == {}
    (diff,) = rep.differences
    assert diff.key == "big.bin" and diff.kind == "unverified"
    assert "never proved the source (source-unverified)" in diff.detail
    assert compare_replicas(source, [replica], allow_unverified=True).ok


def test_manifest_that_proved_the_source_settles_a_multipart_replica(clean_services: dict[str, Any]) -> None:
    # an S3 single-PUT source (MD5 ETag) copied to multipart OSS: only the manifest links the two
    source = bucket(clean_services, "s3", BIG)
    source.store.write(source.key("big.bin"), [os.urandom(6 * MiB)])
    source.store.write(source.key("small.txt"), [b"hello"])
    replica = bucket(clean_services, "oss", SMALL)
    replicate(source, [replica], opts())
    rerun = replicate(source, [replica], opts())
    assert (rerun.copied, rerun.skipped) == (0, 2)  # the newest manifest now holds records carried forward

    report = compare_replicas(source, [replica])
    rep = report.replicas[0]
    assert report.ok and rep.passed == 2, report.table()
    for key in ("small.txt", "big.bin"):  # OSS's ETag is not an MD5 we may rely on: the manifest links them
        assert rep.evidence[key].startswith(
            "MD5 of source (S3 MD5 ETag) = replica (copy-time manifest, replica unchanged since (ETag, size"
        ), rep.evidence
    as_json = json.loads(report.dumps())["replicas"][0]
    assert as_json["evidence"] == rep.evidence and sum(as_json["evidence_counts"].values()) == 2
    assert rep.evidence["big.bin"] in report.table() and "big.bin" in report.to_html()

    rewrite_manifests(replica, says_unverified)
    assert compare_replicas(source, [replica]).replicas[0].unverified == 2, "both rested on the manifest alone"


def test_manifest_counts_only_while_the_replica_keeps_its_recorded_last_modified(
    clean_services: dict[str, Any],
) -> None:
    source = bucket(clean_services, "s3", BIG)
    source.store.write(source.key("big.bin"), [os.urandom(6 * MiB)])
    replica = bucket(clean_services, "oss", SMALL)
    replicate(source, [replica], opts())
    written = replica.store.head(replica.key("big.bin")).last_modified
    assert written is not None

    def records(when: datetime) -> Callable[[dict[str, Any]], None]:
        return lambda rec: rec.update(dest_last_modified=when.isoformat())

    rewrite_manifests(replica, records(written))  # as the copy records it: the HEAD's whole seconds
    rep = compare_replicas(source, [replica]).replicas[0]
    assert rep.passed == 1 and "(ETag, size, last-modified)" in rep.evidence["big.bin"], rep.evidence

    rewrite_manifests(replica, records(written - timedelta(minutes=5)))  # the object was written again since
    report = compare_replicas(source, [replica])
    (diff,) = report.replicas[0].differences
    assert (diff.key, diff.kind) == ("big.bin", "unverified") and "replica changed since (last-modified)" in diff.detail
