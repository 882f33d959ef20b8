"""The Airflow hook for Tencent Cloud COS: an Airflow connection in, a :class:`CosStore` out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_multicloud.errors import MulticloudError
from airflow_multicloud.provider import COS_CONNECTION
from airflow_multicloud.stores.base import TransferConfig
from airflow_multicloud.stores.cos import CosStore, make_client

if TYPE_CHECKING:
    from qcloud_cos import CosS3Client


# the provider-info connection form, declared once in provider.py
CONNECTION_TYPE = COS_CONNECTION


_REFUSAL_HINTS = {
    "SignatureDoesNotMatch": "the SecretKey does not match the SecretId: check the password field",
    "InvalidAccessKeyId": "no such SecretId: check the login field",
    "AccessDenied": "the key may not list buckets (cos:GetService), or the request expired (check the clock)",
}


class CosConnectionError(MulticloudError, ValueError):
    """The Airflow connection lacks a field COS needs, or has an invalid one."""


class CosHook(BaseHook):
    """Tencent Cloud COS through cos-python-sdk-v5.

    Connection: login = SecretId, password = SecretKey; extra: ``region`` (required), ``token`` (temporary
    credentials), ``scheme`` (``https`` by default), ``endpoint`` (send every request to this address, e.g. a
    private endpoint or ``http://127.0.0.1:9000``, keeping the bucket's virtual-host name).

    :param cos_conn_id: the Airflow connection id.
    :param retries: how often the SDK retries a 5xx or a connection error.
    """

    conn_name_attr = "cos_conn_id"
    default_conn_name = "cos_default"
    conn_type = "cos"
    hook_name = "Tencent Cloud COS"

    def __init__(self, cos_conn_id: str = default_conn_name, *, retries: int = 3) -> None:
        super().__init__()
        self.cos_conn_id = cos_conn_id
        self.retries = retries

    def _settings(self) -> dict[str, Any]:
        conn = self.get_connection(self.cos_conn_id)
        extra = conn.extra_dejson or {}

        def field(name: str) -> str | None:
            value = extra.get(name, extra.get(f"extra__cos__{name}"))
            return str(value).strip() if value not in (None, "") else None

        cid = self.cos_conn_id
        if not conn.login:
            raise CosConnectionError(f"Airflow connection {cid!r} has no login: set it to the COS SecretId")
        if not conn.password:
            raise CosConnectionError(f"Airflow connection {cid!r} has no password: set it to the COS SecretKey")
        region = field("region")
        if not region:
            raise CosConnectionError(
                f'Airflow connection {cid!r} has no region: add "region" (e.g. "ap-guangzhou") to its extra'
            )
        scheme = (field("scheme") or "https").lower()
        if scheme not in ("http", "https"):
            raise CosConnectionError(
                f'Airflow connection {cid!r}: extra "scheme" must be http or https, not {scheme!r}'
            )
        return {
            "secret_id": conn.login,
            "secret_key": conn.password,
            "region": region,
            "token": field("token"),
            "scheme": scheme,
            "endpoint": field("endpoint"),
        }

    @property
    def region(self) -> str:
        """The connection's region (for console links)."""
        return str(self._settings()["region"])

    def get_conn(self) -> CosS3Client:
        """The bare SDK client, for what the store does not cover."""
        return make_client(**self._settings(), retries=self.retries)

    def test_connection(self) -> tuple[bool, str]:
        """The connection form's Test button: one GET Service (ListBuckets) signed with the connection's keys.

        Returns ``(ok, message)``; the message says what to fix, never a secret, and names no connection id: the
        form's Test button tests a copy under a random one.
        """
        from qcloud_cos.cos_exception import CosClientError, CosServiceError

        try:
            settings = self._settings()
            make_client(**settings, retries=0).list_buckets(MaxKeys=1)
        except CosConnectionError as exc:
            return False, str(exc).replace(f"Airflow connection {self.cos_conn_id!r}", "the connection")
        except CosServiceError as exc:
            code = exc.get_error_code()
            return False, (
                f"COS refused the keys (HTTP {exc.get_status_code()} {code}): "
                f"{_REFUSAL_HINTS.get(code, 'see the COS error code reference')}"
            )
        except CosClientError as exc:
            where = settings.get("endpoint") or f"COS region {settings['region']}"
            return False, f"could not reach {where}: {exc}"
        return (
            True,
            f"COS accepted the SecretId and SecretKey (GET Service in region {settings['region']} listed buckets)",
        )

    def get_store(self, bucket: str, transfer: TransferConfig | None = None) -> CosStore:
        """A store for ``bucket`` (``name-APPID``) whose errors name this connection."""
        return CosStore.from_settings(
            bucket, **self._settings(), label=self.cos_conn_id, transfer=transfer, retries=self.retries
        )


def open_bucket(conn_id: str, bucket: str, transfer: TransferConfig | None = None) -> tuple[CosStore, CosHook]:
    """The opener ``schemes.py`` names for ``cos://``: the store and the hook that built it."""
    hook = CosHook(cos_conn_id=conn_id)
    return hook.get_store(bucket, transfer=transfer), hook
