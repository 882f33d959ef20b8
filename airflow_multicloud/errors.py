"""Errors a user can cause or meet; each message names the input and says what to do."""

from __future__ import annotations


class MulticloudError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidURIError(MulticloudError, ValueError):
    """A dataset URI that cannot be parsed or names an unknown scheme."""


class InvalidArgumentError(MulticloudError, ValueError):
    """An option or operator argument of the wrong type or out of range; raised before anything is written."""


class StoreError(MulticloudError):
    """A store operation failed; ``retryable`` says whether trying again may help."""

    retryable = False


class ObjectNotFoundError(StoreError):
    """The object does not exist."""


class BucketNotFoundError(StoreError):
    """The bucket (or local root folder) does not exist."""


class AccessDeniedError(StoreError):
    """The credentials were rejected (wrong secret, signature mismatch, no permission)."""


class InvalidKeyError(StoreError):
    """The store cannot hold this key (e.g. a local filesystem name limit)."""


class TransientStoreError(StoreError):
    """Throttling, 5xx or a connection problem: worth retrying."""

    retryable = True


class IntegrityError(StoreError):
    """Bytes arrived different from what was sent: a checksum mismatch."""

    retryable = True


class RetentionLockedError(StoreError):
    """The store refused a delete or an overwrite because the object is under a retention lock (WORM)."""


#: errors from outside this package that a second try may cure (a dropped connection, a timeout)
TRANSIENT_OS_ERRORS = (ConnectionError, TimeoutError)


def is_transient(exc: BaseException) -> bool:
    """True when the service or the network failed, not the input: trying again (later) may succeed."""
    if isinstance(exc, StoreError):
        return exc.retryable
    return isinstance(exc, TRANSIENT_OS_ERRORS)
