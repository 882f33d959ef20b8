"""The Airflow hook for Alibaba Cloud OSS: an Airflow connection in, an :class:`OssStore` out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from airflow_multicloud.errors import MulticloudError
from airflow_multicloud.provider import OSS_CONNECTION
from airflow_multicloud.stores.base import TransferConfig
from airflow_multicloud.stores.oss import OssStore

if TYPE_CHECKING:
    import oss2

_ENDPOINT_REGION = re.compile(r"^oss-([a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com$")

# the provider-info connection form, declared once in provider.py
CONNECTION_TYPE = OSS_CONNECTION


_REFUSAL_HINTS = {
    "SignatureDoesNotMatch": "the AccessKey secret does not match the AccessKey ID (or the region is wrong for v4): "
    "check the password and region fields",
    "InvalidAccessKeyId": "no such AccessKey ID: check the login field",
    "AccessDenied": "the key may not list buckets (oss:ListBuckets), or the request expired (check the clock)",
}


class OssConnectionError(MulticloudError, ValueError):
    """The Airflow connection lacks a field OSS needs, or has an invalid one."""


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


class OssHook(BaseHook):
    """Alibaba Cloud OSS through oss2.

    Connection (type ``multicloud_oss``): login = AccessKey ID, password = AccessKey secret; extra: ``region``
    (e.g. ``cn-hangzhou``), ``endpoint`` (derived from the region when absent), ``auth_version`` (``v4`` by
    default, or ``v1``), ``security_token`` (STS). A connection made for Airflow's Alibaba provider (type ``oss``,
    extra ``auth_type: AK``, ``access_key_id``, ``access_key_secret``, ``region``) works as it is.

    :param oss_conn_id: the Airflow connection id.
    """

    conn_name_attr = "oss_conn_id"
    default_conn_name = "oss_default"
    conn_type = "multicloud_oss"
    hook_name = "Alibaba Cloud OSS (multicloud)"

    def __init__(self, oss_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.oss_conn_id = oss_conn_id

    def get_settings(self) -> OssSettings:
        """Read and check the connection; the error names the connection and the missing field."""
        conn = self.get_connection(self.oss_conn_id)
        extra = conn.extra_dejson or {}

        def field(name: str) -> str | None:
            value = extra.get(name, extra.get(f"extra__{self.conn_type}__{name}"))
            return str(value).strip() if value not in (None, "") else None

        cid = self.oss_conn_id
        auth_type = field("auth_type")
        if auth_type is not None and auth_type.upper() != "AK":
            raise OssConnectionError(
                f"Airflow connection {cid!r} uses auth_type {auth_type!r}: only AccessKey (AK) credentials work here"
            )
        key_id = conn.login or field("access_key_id")
        secret = conn.password or field("access_key_secret")
        if not key_id:
            raise OssConnectionError(f"Airflow connection {cid!r} has no AccessKey ID: set its login")
        if not secret:
            raise OssConnectionError(f"Airflow connection {cid!r} has no AccessKey secret: set its password")
        region = field("region")
        endpoint = field("endpoint") or (conn.host or "").strip() or None
        if region and region.startswith("oss-"):
            region = region[len("oss-") :]
        if not region and endpoint:
            match = _ENDPOINT_REGION.match(urlsplit(endpoint if "://" in endpoint else f"//{endpoint}").hostname or "")
            region = match.group(1) if match else None
        if not endpoint and region:
            endpoint = f"https://oss-{region}.aliyuncs.com"
        auth_version = (field("auth_version") or "v4").lower()
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
        return OssSettings(key_id, secret, endpoint, region, auth_version, field("security_token"))

    def get_store(self, bucket: str, transfer: TransferConfig | None = None) -> OssStore:
        """A store for ``bucket`` whose errors name this connection."""
        s = self.get_settings()
        return OssStore.from_settings(
            bucket,
            access_key_id=s.access_key_id,
            access_key_secret=s.access_key_secret,
            endpoint=s.endpoint,
            region=s.region,
            auth_version=s.auth_version,
            security_token=s.security_token,
            label=self.oss_conn_id,
            transfer=transfer,
        )

    def test_connection(self) -> tuple[bool, str]:
        """The connection form's Test button: one ListBuckets call signed with the connection's keys.

        Returns ``(ok, message)``; the message says what to fix, never a secret, and names no connection id: the
        form's Test button tests a copy under a random one.
        """
        import oss2

        try:
            settings = self.get_settings()
            self.get_conn().list_buckets(max_keys=1)
        except OssConnectionError as exc:
            return False, str(exc).replace(f"Airflow connection {self.oss_conn_id!r}", "the connection")
        except oss2.exceptions.RequestError as exc:
            return False, f"could not reach {settings.endpoint}: {type(exc.exception).__name__}"
        except oss2.exceptions.OssError as exc:
            return False, (
                f"OSS refused the keys (HTTP {exc.status} {exc.code}): "
                f"{_REFUSAL_HINTS.get(exc.code, 'see the OSS error code reference')}"
            )
        return True, (
            f"OSS accepted the AccessKey ID and secret (ListBuckets at {settings.endpoint}, signature "
            f"{settings.auth_version})"
        )

    def get_conn(self) -> oss2.Service:
        """The bare oss2 service client, for what the store does not cover."""
        import oss2

        s = self.get_settings()
        auth: Any = (
            oss2.StsAuth(s.access_key_id, s.access_key_secret, s.security_token, auth_version=s.auth_version)
            if s.security_token
            else oss2.make_auth(s.access_key_id, s.access_key_secret, s.auth_version)
        )
        return oss2.Service(auth, s.endpoint, region=s.region)


def open_bucket(conn_id: str, bucket: str, transfer: TransferConfig | None = None) -> tuple[OssStore, OssHook]:
    """The opener ``schemes.py`` names for ``oss://``: the store and the hook that built it."""
    hook = OssHook(oss_conn_id=conn_id)
    return hook.get_store(bucket, transfer=transfer), hook
