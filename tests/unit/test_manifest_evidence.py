"""Which manifest records quick validation may count: the copy's source proof and the replica's version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_multicloud.replication.model import SourceProof
from airflow_multicloud.stores.base import ObjectInfo
from airflow_multicloud.validation.evidence import replica_changed, source_proof

WRITTEN = datetime(2026, 12, 1, 3, 0, 7, tzinfo=UTC)
REPLICA = ObjectInfo("ds/a.bin", 10, '"abc"', WRITTEN.replace(microsecond=250_000))


@pytest.mark.parametrize(
    ("record", "proof"),
    [
        ({"source_proof": "source-crc64", "verified_by": ["source-crc64", "crc64"]}, SourceProof.CRC64),
        ({"verified_by": ["source-md5", "etag-md5"]}, SourceProof.MD5_ETAG),  # written before source_proof existed
        ({"verified_by": ["source-unverified", "crc64"]}, None),
        ({"source_proof": "source-unverified", "verified_by": ["source-md5"]}, None),  # the field wins
        ({"verified_by": ["previous-manifest"]}, None),  # a skip that lost the earlier copy's proof
        ({"verified_by": ["source-md5", "previous-manifest"]}, SourceProof.MD5_ETAG),
        ({"verified_by": ["server-side-copy", "size"]}, None),
        ({"source_proof": "source-trust-me"}, None),
        ({}, None),
    ],
)
def test_source_proof(record: dict[str, Any], proof: SourceProof | None) -> None:
    assert source_proof(record) is proof


@pytest.mark.parametrize(
    ("changes", "changed"),
    [
        ({}, ""),
        ({"dest_last_modified": None}, ""),  # not known when the copy was made
        ({"dest_last_modified": WRITTEN.isoformat()}, ""),  # a HEAD's whole seconds, a listing's milliseconds
        ({"dest_last_modified": WRITTEN.replace(second=8).isoformat()}, "last-modified"),
        ({"dest_last_modified": WRITTEN.replace(tzinfo=None).isoformat()}, "last-modified"),
        ({"dest_last_modified": "yesterday"}, "last-modified"),
        ({"dest_etag": "abd"}, "ETag"),
        ({"size": 11}, "size"),
    ],
)
def test_replica_changed(changes: dict[str, Any], changed: str) -> None:
    assert replica_changed({"size": 10, "dest_etag": "abc", **changes}, REPLICA) == changed
