"""Which evidence proves a source read, and the hashes that check it (catalogue check values, no server)."""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
from pathlib import Path

import pytest

from airflow_multicloud.replication.model import META_CRC64, SourceProof
from airflow_multicloud.replication.proof import _PartsMd5, _S3Checksum, evidence_for, listed_evidence
from airflow_multicloud.stores.base import ObjectInfo
from airflow_multicloud.stores.local import LocalStore

CHECK = b"123456789"  # the CRC catalogue's check input


@pytest.mark.parametrize(
    ("algorithm", "check_value", "width"),
    [("CRC32", 0xCBF43926, 4), ("CRC32C", 0xE3069283, 4), ("CRC64NVME", 0xAE8B14860A799888, 8)],
)
def test_s3_crc_checksums_match_the_catalogue(algorithm: str, check_value: int, width: int) -> None:
    hasher = _S3Checksum(algorithm)
    hasher.update(CHECK[:4])
    hasher.update(memoryview(CHECK)[4:])
    assert hasher.result() == base64.b64encode(check_value.to_bytes(width, "big")).decode()


def test_s3_sha_checksums_are_base64_digests() -> None:
    hasher = _S3Checksum("SHA256")
    hasher.update(CHECK)
    assert hasher.result() == base64.b64encode(hashlib.sha256(CHECK).digest()).decode()


def test_multipart_etag_is_recomputed_across_chunk_boundaries() -> None:
    data = os.urandom(1000)
    sizes = [300, 300, 300, 100]
    digests = b"".join(hashlib.md5(data[o : o + n]).digest() for o, n in zip([0, 300, 600, 900], sizes, strict=True))
    hasher = _PartsMd5(sizes)
    for start in range(0, 1000, 128):  # chunks that straddle every part boundary
        hasher.update(data[start : start + 128])
    assert hasher.result() == f"{hashlib.md5(digests).hexdigest()}-4"
    short = _PartsMd5(sizes)
    short.update(data[:999])
    assert "do not fit" in short.result()


def test_evidence_prefers_the_cheapest_independent_proof(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path))
    md5 = hashlib.md5(b"x").hexdigest()

    def proof(**kw: object) -> SourceProof:
        return evidence_for(store, "k", ObjectInfo("k", 1, **kw)).proof  # type: ignore[arg-type]

    assert proof(etag=md5, crc64=7) is SourceProof.CRC64
    assert proof(etag=md5, checksum_algorithm="CRC32", checksum="AAAAAA==") is SourceProof.S3_CHECKSUM
    assert proof(etag=md5) is SourceProof.MD5_ETAG
    assert proof(etag=md5, etag_is_md5=False) is SourceProof.LOCAL_STABLE  # SSE-KMS: no MD5; files read stable
    assert proof(etag=md5, etag_is_md5=False, metadata={META_CRC64: "00000000000000ff"}) is SourceProof.RECORDED_CRC64
    assert proof(etag=md5, etag_is_md5=False, checksum_algorithm="SHA256", checksum="x") is SourceProof.S3_CHECKSUM
    # a listing's MD5-looking ETag is a candidate only: encryption is not in a listing
    listed = listed_evidence(store, ObjectInfo("k", 1, etag=md5))
    assert listed is not None and not listed.certain


def test_cli_and_operator_take_source_verification_and_server_side() -> None:
    from airflow_multicloud.cli.options import add_replication_flags, replication_options
    from airflow_multicloud.operators.replicate import ReplicateDatasetOperator

    parser = argparse.ArgumentParser()
    add_replication_flags(parser)
    options = replication_options(parser.parse_args(["--source-verification", "strict", "--no-server-side"]))
    assert options.copy.source_verification == "strict" and not options.copy.server_side
    assert replication_options(parser.parse_args([])).copy.source_verification == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["--source-verification", "never"])
    op = ReplicateDatasetOperator(
        task_id="t",
        source="s3://raw-data/",
        destinations="cos://backup-1250000000/",
        server_side=False,
        source_verification="strict",
    )
    assert op.options.copy.source_verification == "strict" and not op.options.copy.server_side
    with pytest.raises(ValueError, match="source_verification='sometimes'"):
        ReplicateDatasetOperator(
            task_id="u", source="s3://raw-data/", destinations="cos://bk-1250000000/", source_verification="sometimes"
        )
