"""Dataset URIs: ``s3://bucket/prefix``, ``cos://bucket-appid/prefix`` (``cosn://``), ``oss://bucket/prefix``,
``file:///path``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from airflow_multicloud.errors import InvalidURIError
from airflow_multicloud.schemes import SCHEME_ALIASES, SCHEMES, listed


@dataclass(frozen=True)
class DatasetURI:
    """A parsed dataset location; for ``file`` the bucket is ``/`` and the prefix the path.

    ``prefix`` is kept as written (an asset may name one object); a replication or a check takes it as a folder
    (:func:`folder_prefix`, applied by ``Location``).
    """

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
            f"(schemes: {listed()})"
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


def folder_prefix(prefix: str, uri: str = "") -> str:
    """A dataset prefix as the folder it names: ``sales/2024`` becomes ``sales/2024/``; "" stays the whole bucket.

    Raise :class:`InvalidURIError` for a prefix with an empty folder name (a leading ``/`` or ``//``): nearly
    always two pieces joined with one ``/`` too many, and it would read or write keys outside the folder meant.
    """
    if not prefix:
        return ""
    folder = prefix if prefix.endswith("/") else prefix + "/"
    if folder.startswith("/") or "//" in folder:
        where = f"{uri!r}: prefix" if uri else "prefix"
        raise InvalidURIError(
            f"{where} {prefix!r} has an empty folder name (a leading '/' or a '//'): write it as "
            f"{'/'.join(p for p in folder.split('/') if p)}/ if that is the folder you mean"
        )
    return folder


def check_scheme(uri: str, raw_scheme: str) -> str:
    """The canonical scheme for ``raw_scheme`` (``cosn`` -> ``cos``); an unknown one is an error quoting ``uri``."""
    scheme = SCHEME_ALIASES.get(raw_scheme.lower())
    if scheme is None:
        raise InvalidURIError(f"{uri!r} has unknown scheme {raw_scheme!r}: use one of {listed()}")
    return scheme


def _check_bucket(uri: str, scheme: str, bucket: str) -> None:
    if not bucket:
        raise InvalidURIError(f"{uri!r} names no bucket: expected {scheme}://bucket/prefix")
    spec = SCHEMES[scheme]
    if spec.bucket_pattern is not None and not spec.bucket_pattern.match(bucket):
        raise InvalidURIError(f"{uri!r}: bucket {bucket!r} is not a valid {scheme} bucket name ({spec.bucket_hint})")
