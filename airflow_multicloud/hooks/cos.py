"""The Airflow hook for Tencent Cloud COS: an Airflow connection in, a :class:`CosStore` out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_multicloud.hooks.settings import CosConnectionError, cos_settings, cos_store
from airflow_multicloud.provider import COS_CONNECTION
from airflow_multicloud.stores.base import TransferConfig
from airflow_multicloud.stores.cos import make_client

if TYPE_CHECKING:
    from qcloud_cos import CosS3Client

    from airflow_multicloud.stores.cos import CosStore


# the provider-info connection form, declared once in provider.py
CONNECTION_TYPE = COS_CONNECTION
__all__ = ["CONNECTION_TYPE", "CosConnectionError", "CosHook", "open_bucket"]


_REFUSAL_HINTS = {
    "SignatureDoesNotMatch": "the SecretKey does not match the SecretId: check the password field",
    "InvalidAccessKeyId": "no such SecretId: check the login field",
    "AccessDenied": "the key may not list buckets (cos:GetService), or the request expired (check the clock)",
}


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
        return cos_settings(self.get_connection(self.cos_conn_id), self.cos_conn_id)

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
        return cos_store(self._settings(), self.cos_conn_id, bucket, transfer, retries=self.retries)


def open_bucket(conn_id: str, bucket: str, transfer: TransferConfig | None = None) -> tuple[CosStore, CosHook]:
    """The opener ``schemes.py`` names for ``cos://``: the store and the hook that built it."""
    hook = CosHook(cos_conn_id=conn_id)
    return hook.get_store(bucket, transfer=transfer), hook
