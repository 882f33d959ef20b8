"""The S3 store's timestamp parser gives exactly botocore's datetimes, for the forms S3 sends and any other."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.utils import parse_timestamp as botocore_parse

from airflow_multicloud.stores.s3 import S3Store
from airflow_multicloud.stores.s3_client import parse_timestamp


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-26T08:00:00.000Z",  # ListObjectsV2
        "2026-11-26T08:00:00Z",
        "2026-11-26T08:00:00.123456Z",
        "Thu, 26 Nov 2026 08:00:00 GMT",  # Last-Modified header
        "2026-11-26T08:00:00+01:00",  # not S3's: botocore's own parser
        "1700000000",
        1700000000,
        "Thursday, 26-Nov-26 08:00:00 GMT",
    ],
)
def test_same_datetime_as_botocore(value: Any) -> None:
    ours, theirs = parse_timestamp(value), botocore_parse(value)
    assert ours == theirs and ours.utcoffset() == theirs.utcoffset()


def test_bad_timestamp_fails_like_botocore() -> None:
    with pytest.raises(ValueError):
        botocore_parse("not a date")
    with pytest.raises(ValueError):
        parse_timestamp("not a date")


def test_store_clients_use_it() -> None:
    store = S3Store.from_settings("b", access_key_id="k", secret_access_key="s", region="us-east-1")
    assert store.client._endpoint._response_parser_factory._defaults["timestamp_parser"] is parse_timestamp
