"""Dataset URIs: ``s3://bucket/prefix``, ``cos://bucket-appid/prefix`` (``cosn://``), ``oss://bucket/prefix``,
``file:///path``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from airflow_multicloud.errors import InvalidURIError

SCHEME_ALIASES = {"s3": "s3", "s3a": "s3", "cos": "cos", "cosn": "cos", "oss": "oss", "file": "file"}
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_COS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9\-]*-\d+$")
_OSS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9\-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class DatasetURI:
    """A parsed dataset location. ``prefix`` never starts with ``/``; for ``file`` the bucket is the root folder."""

    scheme: str
    bucket: str
    prefix: str

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.bucket.rstrip('/')}/{self.prefix}"
        return f"{self.scheme}://{self.bucket}/{self.prefix}"

    def child(self, key: str) -> str:
        """The URI of one object under this dataset (``key`` is the full key in the bucket)."""
        return str(DatasetURI(self.scheme, self.bucket, key))


def parse_uri(uri: str) -> DatasetURI:
    """Parse a dataset URI; raise :class:`InvalidURIError` quoting the input when it is malformed."""
    if not isinstance(uri, str) or "://" not in uri:
        raise InvalidURIError(
            f"{uri!r} is not a dataset URI: expected scheme://bucket/prefix, e.g. s3://my-bucket/sales/ "
            "(schemes: s3, cos, cosn, oss, file)"
        )
    raw_scheme, rest = uri.split("://", 1)
    scheme = check_scheme(uri, raw_scheme)
    if scheme == "file":
        path = urlsplit(uri).path if rest.startswith("/") else ""
        if not path.startswith("/"):
            raise InvalidURIError(f"{uri!r}: a file URI needs an absolute path, e.g. file:///data/exports/")
        return DatasetURI("file", "/", path.lstrip("/"))
    bucket, _, prefix = rest.partition("/")
    _check_bucket(uri, scheme, bucket)
    return DatasetURI(scheme, bucket, prefix)


def check_scheme(uri: str, raw_scheme: str) -> str:
    """The canonical scheme for ``raw_scheme`` (``cosn`` -> ``cos``); an unknown one is an error quoting ``uri``."""
    scheme = SCHEME_ALIASES.get(raw_scheme.lower())
    if scheme is None:
        raise InvalidURIError(
            f"{uri!r} has unknown scheme {raw_scheme!r}: use one of s3://, cos:// (or cosn://), oss://, file://"
        )
    return scheme


def _check_bucket(uri: str, scheme: str, bucket: str) -> None:
    if not bucket:
        raise InvalidURIError(f"{uri!r} names no bucket: expected {scheme}://bucket/prefix")
    pattern = {"s3": _S3_BUCKET, "cos": _COS_BUCKET, "oss": _OSS_BUCKET}[scheme]
    if not pattern.match(bucket):
        hint = {
            "s3": "3-63 lowercase letters, digits, dots and hyphens",
            "cos": "lowercase name followed by -APPID, e.g. backups-1250000000",
            "oss": "3-63 lowercase letters, digits and hyphens",
        }[scheme]
        raise InvalidURIError(f"{uri!r}: bucket {bucket!r} is not a valid {scheme} bucket name ({hint})")
