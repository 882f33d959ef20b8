"""The scheme table: every dotted path in it resolves to what its readers expect, and they read nothing else."""

from __future__ import annotations

import importlib
import inspect

import pytest

from airflow_multicloud.errors import InvalidURIError
from airflow_multicloud.provider import get_provider_info
from airflow_multicloud.schemes import SCHEME_ALIASES, SCHEMES, Scheme
from airflow_multicloud.stores.base import ObjectStore
from airflow_multicloud.uri import parse_uri


def _attr(dotted: str) -> object:
    module, _, name = dotted.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("spec", SCHEMES.values(), ids=list(SCHEMES))
def test_every_path_in_the_table_resolves(spec: Scheme) -> None:
    store = _attr(spec.store)
    assert inspect.isclass(store) and issubclass(store, ObjectStore) and store.scheme == spec.name
    if spec.opener:
        assert list(inspect.signature(_attr(spec.opener)).parameters)[:3] == ["conn_id", "bucket", "transfer"]
        assert spec.default_conn_id and spec.hook
    if spec.hook:
        assert inspect.isclass(_attr(spec.hook))
    if spec.asset_module:
        for name in ("sanitize_uri", "create_asset", "convert_asset_to_openlineage"):
            assert callable(getattr(importlib.import_module(spec.asset_module), name))
    if spec.fs_module:
        fs = importlib.import_module(spec.fs_module)
        assert sorted(fs.schemes) == sorted(spec.spellings) and callable(fs.get_fs)


def test_the_provider_info_is_built_from_the_table() -> None:
    info = get_provider_info()
    assert {s for entry in info["asset-uris"] for s in entry["schemes"]} == {"cos", "cosn", "oss"}
    assert info["filesystems"] == [s.fs_module for s in SCHEMES.values() if s.fs_module]


@pytest.mark.parametrize(
    ("uri", "scheme"), [("s3a://bucket-1/x", "s3"), ("cosn://b-1250000000/x", "cos"), ("OSS://bucket/x", "oss")]
)
def test_uris_parse_through_the_table(uri: str, scheme: str) -> None:
    assert parse_uri(uri).scheme == scheme == SCHEME_ALIASES[uri.split("://")[0].lower()]


def test_errors_list_every_spelling_from_the_table() -> None:
    with pytest.raises(
        InvalidURIError, match=r"use one of s3:// \(or s3a://\), cos:// \(or cosn://\), oss://, file://"
    ):
        parse_uri("gs://bucket/x")
    with pytest.raises(InvalidURIError, match="-APPID"):
        parse_uri("cos://no-appid/x")
