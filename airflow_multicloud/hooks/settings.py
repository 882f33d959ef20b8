"""What a COS, OSS or S3 connection says, read from any connection-like object, and the stores built from it.

The hooks read Airflow's ``Connection``; the CLI reads :class:`~airflow_multicloud.hooks.env_connections.EnvConnection`
parsed from the environment without importing Airflow (``env_opener`` in ``schemes.py``). One parser for both, so a
connection means the same thing in a task and on the command line. Nothing here imports Airflow or an SDK at import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from airflow_multicloud.errors import MulticloudError
from airflow_multicloud.stores.base import CLIENT_POOL_SIZE, TransferConfig
from airflow_multicloud.stores.s3_fast import DATA_CLIENT_EXTRA, DATA_CLIENTS

if TYPE_CHECKING:
    from airflow_multicloud.stores.base import ObjectStore
    from airflow_multicloud.stores.cos import CosStore
    from airflow_multicloud.stores.oss import OssStore

_ENDPOINT_REGION = re.compile(r"^oss-([a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com$")


class ConnectionLike(Protocol):
    """Airflow's ``Connection`` or an ``EnvConnection``: the fields read here."""

    @property
    def host(self) -> str | None: ...
    @property
    def login(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def extra_dejson(self) -> dict[str, Any]: ...


class CosConnectionError(MulticloudError, ValueError):
    """The Airflow connection lacks a field COS needs, or has an invalid one."""


class OssConnectionError(MulticloudError, ValueError):
    """The Airflow connection lacks a field OSS needs, or has an invalid one."""


class S3ConnectionError(MulticloudError, ValueError):
    """An S3 (``aws``) connection has an invalid extra of ours."""


def _field(extra: dict[str, Any], conn_type: str, name: str) -> str | None:
    value = extra.get(name, extra.get(f"extra__{conn_type}__{name}"))
    return str(value).strip() if value not in (None, "") else None


def cos_settings(conn: ConnectionLike, cid: str) -> dict[str, Any]:
    """The keyword arguments of ``CosStore.from_settings`` a COS connection gives; errors name ``cid``."""
    extra = conn.extra_dejson or {}
    if not conn.login:
        raise CosConnectionError(f"Airflow connection {cid!r} has no login: set it to the COS SecretId")
    if not conn.password:
        raise CosConnectionError(f"Airflow connection {cid!r} has no password: set it to the COS SecretKey")
    region = _field(extra, "cos", "region")
    if not region:
        raise CosConnectionError(
            f'Airflow connection {cid!r} has no region: add "region" (e.g. "ap-guangzhou") to its extra'
        )
    scheme = (_field(extra, "cos", "scheme") or "https").lower()
    if scheme not in ("http", "https"):
        raise CosConnectionError(f'Airflow connection {cid!r}: extra "scheme" must be http or https, not {scheme!r}')
    return {
        "secret_id": conn.login,
        "secret_key": conn.password,
        "region": region,
        "token": _field(extra, "cos", "token"),
        "scheme": scheme,
        "endpoint": _field(extra, "cos", "endpoint"),
    }


def cos_store(
    settings: dict[str, Any], cid: str, bucket: str, transfer: TransferConfig | None, retries: int = 3
) -> CosStore:
    from airflow_multicloud.stores.cos import CosStore

    return CosStore.from_settings(bucket, **settings, label=cid, transfer=transfer, retries=retries)


@dataclass(frozen=True)
class OssSettings:
    """What a connection says; ``repr`` hides the secrets."""

    access_key_id: str
    access_key_secret: str
    endpoint: str
    region: str | None
    auth_version: str
    security_token: str | None

    def __repr__(self) -> str:
        return (
            f"OssSettings(access_key_id={self.access_key_id!r}, endpoint={self.endpoint!r}, region={self.region!r}, "
            f"auth_version={self.auth_version!r})"
        )


def oss_settings(conn: ConnectionLike, cid: str, conn_type: str = "multicloud_oss") -> OssSettings:
    """Read and check an OSS connection (ours, or one made for Airflow's Alibaba provider); errors name ``cid``."""
    extra = conn.extra_dejson or {}
    auth_type = _field(extra, conn_type, "auth_type")
    if auth_type is not None and auth_type.upper() != "AK":
        raise OssConnectionError(
            f"Airflow connection {cid!r} uses auth_type {auth_type!r}: only AccessKey (AK) credentials work here"
        )
    key_id = conn.login or _field(extra, conn_type, "access_key_id")
    secret = conn.password or _field(extra, conn_type, "access_key_secret")
    if not key_id:
        raise OssConnectionError(f"Airflow connection {cid!r} has no AccessKey ID: set its login")
    if not secret:
        raise OssConnectionError(f"Airflow connection {cid!r} has no AccessKey secret: set its password")
    region = _field(extra, conn_type, "region")
    endpoint = _field(extra, conn_type, "endpoint") or (conn.host or "").strip() or None
    if region and region.startswith("oss-"):
        region = region[len("oss-") :]
    if not region and endpoint:
        match = _ENDPOINT_REGION.match(urlsplit(endpoint if "://" in endpoint else f"//{endpoint}").hostname or "")
        region = match.group(1) if match else None
    if not endpoint and region:
        endpoint = f"https://oss-{region}.aliyuncs.com"
    auth_version = (_field(extra, conn_type, "auth_version") or "v4").lower()
    if auth_version not in ("v1", "v4"):
        raise OssConnectionError(
            f'Airflow connection {cid!r}: extra "auth_version" must be v4 or v1, not {auth_version!r}'
        )
    if not endpoint:
        raise OssConnectionError(
            f'Airflow connection {cid!r} has neither region nor endpoint: add "region" (e.g. "cn-hangzhou") '
            "to its extra"
        )
    if auth_version == "v4" and not region:
        raise OssConnectionError(
            f'Airflow connection {cid!r} has no region, which signature v4 needs: add "region" (e.g. '
            f'"cn-hangzhou") to its extra, or set "auth_version": "v1"'
        )
    return OssSettings(key_id, secret, endpoint, region, auth_version, _field(extra, conn_type, "security_token"))


def oss_store(s: OssSettings, cid: str, bucket: str, transfer: TransferConfig | None) -> OssStore:
    from airflow_multicloud.stores.oss import OssStore

    return OssStore.from_settings(
        bucket,
        access_key_id=s.access_key_id,
        access_key_secret=s.access_key_secret,
        endpoint=s.endpoint,
        region=s.region,
        auth_version=s.auth_version,
        security_token=s.security_token,
        label=cid,
        transfer=transfer,
    )


# ---- openers from environment connections (``env_opener`` in schemes.py): None = let Airflow build it ---------------
def open_cos_env(conn: ConnectionLike, cid: str, bucket: str, transfer: TransferConfig | None) -> ObjectStore | None:
    return cos_store(cos_settings(conn, cid), cid, bucket, transfer)


def open_oss_env(conn: ConnectionLike, cid: str, bucket: str, transfer: TransferConfig | None) -> ObjectStore | None:
    return oss_store(oss_settings(conn, cid), cid, bucket, transfer)


# what the amazon provider's connection wrapper reads for a plain key pair; any other extra (role_arn, profile_name,
# service_config, assume-role settings...) needs the provider's session factory, so Airflow builds that client
_PLAIN_AWS_EXTRA = frozenset(
    {
        "region_name",
        "endpoint_url",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "config_kwargs",
        "verify",
        DATA_CLIENT_EXTRA,
    }
)


def s3_data_client(extra: dict[str, Any] | None, cid: str) -> str:
    """Which client does the S3 store's GET and PUT: the connection's extra ``multicloud_data_client`` (``obstore``,
    the default, or ``boto3``); errors name ``cid``."""
    value = str((extra or {}).get(DATA_CLIENT_EXTRA) or "obstore").strip().lower()
    if value not in DATA_CLIENTS:
        raise S3ConnectionError(
            f'Airflow connection {cid!r}: extra "{DATA_CLIENT_EXTRA}" must be "obstore" or "boto3", not {value!r}'
        )
    return value


def s3_client_config(config_kwargs: dict[str, Any] | None = None) -> Any:
    """The botocore config every S3 client here uses, over what the connection's ``config_kwargs`` say."""
    from botocore import UNSIGNED
    from botocore.config import Config

    ours = Config(
        max_pool_connections=CLIENT_POOL_SIZE,
        # the signed payload (http) or Content-MD5 (https) already protects every PUT; a CRC32 would be another pass
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    if not config_kwargs:
        return ours
    own = dict(config_kwargs)
    if own.get("signature_version") == "unsigned":
        own["signature_version"] = UNSIGNED
    return Config(**own).merge(ours)


def open_s3_env(
    conn: ConnectionLike | None, cid: str, bucket: str, transfer: TransferConfig | None
) -> ObjectStore | None:
    """An S3 store from a plain key pair (or, with no connection, boto3's own credential chain), as the amazon
    provider's S3Hook would build it; None for anything the provider's session factory must handle."""
    extra = dict(conn.extra_dejson or {}) if conn is not None else {}
    if conn is not None and (set(extra) - _PLAIN_AWS_EXTRA or getattr(conn, "conn_type", "aws") not in ("aws", "")):
        return None
    import boto3

    from airflow_multicloud.stores.s3 import S3Store

    login = (conn.login if conn else None) or extra.get("aws_access_key_id")
    password = (conn.password if conn else None) or extra.get("aws_secret_access_key")
    session = boto3.session.Session(
        aws_access_key_id=login if login and password else None,
        aws_secret_access_key=password if login and password else None,
        aws_session_token=extra.get("aws_session_token"),
        region_name=extra.get("region_name"),
    )
    client = session.client(
        "s3",
        endpoint_url=extra.get("endpoint_url"),
        config=s3_client_config(extra.get("config_kwargs")),
        verify=extra.get("verify"),
    )
    return S3Store(client, bucket, label=cid, transfer=transfer, data_client=s3_data_client(extra, cid))
