"""The S3 store's bulk data path through obstore (Rust's ``object_store``): GET and PUT at a fifth of botocore's
client CPU per request (bench/client_cpu.py), with the same checks.

Built from the boto3 client the amazon provider's connection made, so that connection keeps saying where, how and
with which credentials: the URL botocore would send to (addressing style, endpoint, region), its timeouts, retries
and certificate settings, and its credentials (a provider called when they near expiry, so assumed and refreshing
roles keep working). A PUT's bytes are protected as botocore's are: obstore signs each payload's SHA-256, which S3
checks before it stores anything. No SDK import at module level.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from obstore import GetOptions
    from obstore.store import ClientConfig, RetryConfig

#: the connection extra that chooses the client for GET and PUT: ``obstore`` (default) or ``boto3``
DATA_CLIENT_EXTRA = "multicloud_data_client"
DATA_CLIENTS = ("obstore", "boto3")

_STATUS = re.compile(r"status code: (\d{3})")
_CODE = re.compile(r"<Code>([^<]*)</Code>")
_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")
# ``object_store`` paths drop a leading or trailing "/" and refuse empty, "." and ".." segments and control characters
_UNSAFE_SEGMENTS = {"", ".", ".."}


def key_fits(key: str) -> bool:
    """True when obstore sends ``key`` unchanged; other keys (``dir/``, ``a//b``...) go through boto3."""
    if any(c < " " or c == "\x7f" for c in key):
        return False
    return not any(part in _UNSAFE_SEGMENTS for part in key.split("/"))


@dataclass(frozen=True)
class Answer:
    """What S3 answered to an obstore request: HTTP status (0: no answer), error code and message;
    ``no_credentials``: the request was never sent, the connection's credentials could not be had."""

    status: int
    code: str
    message: str
    no_credentials: bool = False


def answer(exc: BaseException) -> Answer | None:
    """The answer an obstore error carries; None when ``exc`` is not obstore's."""
    if not _is_obstore_error(exc):
        return None
    from obstore.exceptions import UnauthenticatedError

    text = str(exc)
    if "Received redirect without LOCATION" in text:  # how object_store reports S3's 301 for another region
        return Answer(301, "PermanentRedirect", "the bucket is in another region")
    status = _STATUS.search(text)
    code = _CODE.search(text)
    message = _MESSAGE.search(text)
    return Answer(
        int(status.group(1)) if status else 0,
        code.group(1) if code else (status.group(1) if status else ""),
        message.group(1) if message else "",
        isinstance(exc, UnauthenticatedError) and not status,
    )


def _is_obstore_error(exc: BaseException) -> bool:
    from obstore.exceptions import BaseError

    # a missing object comes as the builtin FileNotFoundError, raised from obstore's own module
    return isinstance(exc, BaseError) or (isinstance(exc, FileNotFoundError) and "performing" in str(exc))


def errors() -> tuple[type[BaseException], ...]:
    """The exception types obstore raises for a failed request."""
    from obstore.exceptions import BaseError

    return (BaseError, FileNotFoundError)


class FastData:
    """GET and PUT of one bucket through obstore.

    :param store: the obstore ``S3Store`` of the bucket.
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def read(self, key: str, start: int, end: int | None, chunk_size: int) -> Iterator[bytes]:
        """Bytes ``[start, end)`` in chunks of ``chunk_size`` (the last shorter), as botocore's ``iter_chunks``."""
        import obstore

        options: GetOptions = {}
        if end is not None:
            options["range"] = (start, end)
        elif start > 0:
            options["range"] = {"offset": start}
        result = obstore.get(self.store, key, options=options or None)
        first, last = result.range
        if last - first <= chunk_size:
            data = bytes(result.bytes())
            if data:
                yield data
            return
        yield from _exact(result.stream(min_chunk_size=chunk_size), chunk_size)

    def put(self, key: str, data: bytes, metadata: Mapping[str, str], content_type: str | None) -> str:
        """One PUT (never multipart) of ``data`` with user metadata; returns the ETag S3 computed."""
        import obstore

        attributes: dict[str, str] = dict(metadata)
        if content_type:
            attributes["Content-Type"] = content_type
        result = obstore.put(self.store, key, data, attributes=attributes, use_multipart=False)
        return str(result["e_tag"] or "")


def _exact(stream: Iterator[bytes], size: int) -> Iterator[bytes]:
    """``stream``'s bytes cut into chunks of exactly ``size`` (obstore's are at least that): the copy engine reads a
    source in part-sized chunks so each one is a whole part for every writer."""
    held = bytearray()
    for chunk in stream:
        if not held and len(chunk) == size:
            yield chunk
            continue
        held += chunk
        while len(held) >= size:
            yield bytes(held[:size])
            del held[:size]
    if held:
        yield bytes(held)


def from_client(client: Any, bucket: str) -> FastData | None:
    """The obstore path for ``bucket`` as ``client`` reaches it; None where the client has settings obstore cannot
    follow (a proxy or client certificate in its config, a signature other than SigV4, no credentials): boto3 then
    does the data path too."""
    from botocore import UNSIGNED
    from botocore.exceptions import BotoCoreError, ClientError
    from obstore.store import S3Store

    config = client.meta.config
    signature = config.signature_version
    unsigned = signature is UNSIGNED
    if not unsigned and not (isinstance(signature, str) and "v4" in signature):
        return None
    if config.proxies or config.client_cert:
        return None
    try:
        url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
    except (BotoCoreError, ClientError):
        return None
    where = _addressing(url, bucket)
    if where is None:
        return None
    endpoint, virtual = where
    kwargs: dict[str, Any] = {}
    if unsigned:
        kwargs["skip_signature"] = True
    else:
        credentials = client._get_credentials()  # botocore's own accessor; the same object signs boto3's requests
        if credentials is None:
            return None
        kwargs.update(_credentials(credentials))
    try:
        client_options = _client_options(client, endpoint)
    except OSError:
        return None
    store = S3Store(
        bucket,
        endpoint=endpoint,
        region=client.meta.region_name or "us-east-1",
        virtual_hosted_style_request=virtual,
        client_options=client_options,
        retry_config=_retry_config(config),
        **kwargs,
    )
    return FastData(store)


def _addressing(url: str, bucket: str) -> tuple[str, bool] | None:
    """The endpoint and whether it is virtual-hosted, from a URL botocore made for key ``k`` of ``bucket``."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    if parts.path.endswith(f"/{bucket}/k"):
        return base + parts.path[: -len(f"/{bucket}/k")], False
    if parts.path == "/k" and parts.netloc.startswith(f"{bucket}."):
        return base, True
    return None


def _credentials(credentials: Any) -> dict[str, Any]:
    """Static keys as they are; refreshable ones (assumed roles, instance profiles...) through a provider that
    botocore refreshes."""
    if getattr(credentials, "refresh_needed", None) is None:
        frozen = credentials.get_frozen_credentials()
        static = {"access_key_id": frozen.access_key, "secret_access_key": frozen.secret_key}
        return static | ({"session_token": frozen.token} if frozen.token else {})
    return {"credential_provider": _RefreshingCredentials(credentials)}


class _RefreshingCredentials:
    """obstore's credential provider over botocore's refreshable credentials: obstore asks again five minutes before
    the expiry given here, botocore refreshes fifteen minutes before it."""

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials

    def __call__(self) -> dict[str, Any]:
        frozen = self._credentials.get_frozen_credentials()
        expiry = getattr(self._credentials, "_expiry_time", None)
        if not isinstance(expiry, datetime):
            expiry = datetime.now(UTC) + timedelta(minutes=15)
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": expiry.astimezone(UTC) if expiry.tzinfo else expiry.replace(tzinfo=UTC),
        }

    def __repr__(self) -> str:
        return "_RefreshingCredentials(<botocore credentials>)"


def _client_options(client: Any, endpoint: str) -> ClientConfig:
    """botocore's timeouts and pool size. Its read timeout bounds each wait for bytes (a stalled server fails
    within it); obstore's whole-request timeout (30 s by default) would cut a large object's stream, so it is
    set far above any read's length."""
    config = client.meta.config
    options: ClientConfig = {
        "allow_http": endpoint.startswith("http:"),
        "connect_timeout": timedelta(seconds=float(config.connect_timeout)),
        "read_timeout": timedelta(seconds=float(config.read_timeout)),
        "timeout": timedelta(days=1),
        "pool_max_idle_per_host": str(config.max_pool_connections),
    }
    verify = getattr(getattr(client, "_endpoint", None), "http_session", None)
    verify = getattr(verify, "_verify", True)
    if verify is False:
        options["allow_invalid_certificates"] = True
    elif isinstance(verify, str) and endpoint.startswith("https:"):
        with open(verify, "rb") as pem:  # a bundle that cannot be read: OSError, and boto3 does the data path
            options["root_certificate"] = pem.read()
    return options


def _retry_config(config: Any) -> RetryConfig:
    """As many attempts as botocore makes (3 in standard mode), with its growth of waits."""
    attempts = int((config.retries or {}).get("total_max_attempts") or (config.retries or {}).get("max_attempts") or 3)
    return {
        "max_retries": max(attempts - 1, 0),
        "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=20), "base": 2},
        "retry_timeout": timedelta(minutes=3),
    }
