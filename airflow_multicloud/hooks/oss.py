"""The Airflow hook for Alibaba Cloud OSS: an Airflow connection in, an :class:`OssStore` out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_multicloud.hooks.settings import OssConnectionError, OssSettings, oss_settings, oss_store
from airflow_multicloud.provider import OSS_CONNECTION
from airflow_multicloud.stores.base import TransferConfig

if TYPE_CHECKING:
    import oss2

    from airflow_multicloud.stores.oss import OssStore

# the provider-info connection form, declared once in provider.py
CONNECTION_TYPE = OSS_CONNECTION
__all__ = ["CONNECTION_TYPE", "OssConnectionError", "OssHook", "OssSettings", "open_bucket"]


_REFUSAL_HINTS = {
    "SignatureDoesNotMatch": "the AccessKey secret does not match the AccessKey ID (or the region is wrong for v4): "
    "check the password and region fields",
    "InvalidAccessKeyId": "no such AccessKey ID: check the login field",
    "AccessDenied": "the key may not list buckets (oss:ListBuckets), or the request expired (check the clock)",
}


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
        return oss_settings(self.get_connection(self.oss_conn_id), self.oss_conn_id, self.conn_type)

    def get_store(self, bucket: str, transfer: TransferConfig | None = None) -> OssStore:
        """A store for ``bucket`` whose errors name this connection."""
        return oss_store(self.get_settings(), self.oss_conn_id, bucket, transfer)

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
