"""Errors a user can cause or meet; each message names the input and says what to do."""

from __future__ import annotations


class MulticloudError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidURIError(MulticloudError, ValueError):
    """A dataset URI that cannot be parsed or names an unknown scheme."""


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
