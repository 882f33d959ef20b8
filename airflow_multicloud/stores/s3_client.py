"""The boto3 client the S3 store uses, and what it changes in botocore's handling of each request (no SDK import at
module level)."""

from __future__ import annotations

import threading
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from airflow_multicloud.stores.base import CLIENT_POOL_SIZE, MiB

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any


def make_client(
    access_key_id: str | None,
    secret_access_key: str | None,
    session_token: str | None,
    region: str | None,
    endpoint_url: str | None,
    max_pool_connections: int = CLIENT_POOL_SIZE,
) -> S3Client:
    """A boto3 S3 client; path-style addressing for custom endpoints (IPs and most S3-compatible servers)."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=region,
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=max_pool_connections,
        # the signed payload (http) or Content-MD5 (https) already protects every PUT; a CRC32 would be another pass
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        region_name=region,
    )
    return session.client("s3", endpoint_url=endpoint_url, config=config)


def parse_timestamp(value: Any) -> datetime:
    """botocore's timestamp parsing, without dateutil for the two forms S3 sends.

    botocore hands every timestamp to dateutil (~80 us each): a 5,000-key listing spent most of its client time
    there. ISO 8601 (listings: ``2026-11-26T08:00:00.000Z``) and RFC 1123 (headers) have exact parsers in the
    standard library; anything else still goes to botocore's own parser, so results never differ.
    """
    if isinstance(value, str):
        try:
            if len(value) >= 20 and value[10] == "T" and value[-1] == "Z":
                return datetime.fromisoformat(value)
            if value.endswith(" GMT"):
                return parsedate_to_datetime(value)
        except (TypeError, ValueError):
            pass
    from botocore.utils import parse_timestamp as botocore_parse

    return botocore_parse(value)


def use_fast_timestamps(client: Any) -> None:
    """Make ``client`` parse response timestamps with :func:`parse_timestamp` (and other clients of its session:
    botocore shares one parser factory per session; the results are the same datetimes, only faster)."""
    factory = getattr(getattr(client, "_endpoint", None), "_response_parser_factory", None)
    if factory is not None and hasattr(factory, "set_parser_defaults"):  # botocore internals: skip if they change
        factory.set_parser_defaults(timestamp_parser=parse_timestamp)


#: bodies below this go without ``Expect: 100-continue`` (the AWS SDK for Go draws the line at 2 MiB too)
EXPECT_CONTINUE_FROM = 2 * MiB


def _drop_expect_for_small_bodies(params: dict[str, Any], **_: Any) -> None:
    """botocore asks every PUT to wait for ``100 Continue`` before sending its body: a round trip and a server
    reply per request, there to spare re-sending a large body that would be refused. Small bodies skip it."""
    headers = params.get("headers") or {}
    body = params.get("body")
    if "Expect" in headers and body is not None:
        from botocore.utils import determine_content_length

        size = determine_content_length(body)
        if size is not None and size < EXPECT_CONTINUE_FROM:
            del headers["Expect"]


#: set while this thread sends a part whose payload goes unhashed (UNSIGNED-PAYLOAD): its MD5 proves it instead
UNHASHED = threading.local()


def _unsigned_payload_when_asked(request: Any, **_: Any) -> None:
    """botocore hashes every S3 payload it signs over http (SHA-256: a pass over each byte); a part that
    :meth:`S3Store.upload_part_by_md5` sends goes as UNSIGNED-PAYLOAD instead (S3's own switch for it)."""
    config = getattr(UNHASHED, "config", None)
    if config is not None:
        request.context["client_config"] = config


def tune_client(client: Any) -> None:
    """Faster timestamps, no ``100-continue`` wait for small bodies, and unhashed parts where asked (idempotent)."""
    use_fast_timestamps(client)
    # after botocore's own before-call handler (which adds the header), once per client
    client.meta.events.register_last(
        "before-call.s3", _drop_expect_for_small_bodies, unique_id="airflow-multicloud-expect"
    )
    client.meta.events.register(
        "before-sign.s3.UploadPart", _unsigned_payload_when_asked, unique_id="airflow-multicloud-unsigned"
    )
