"""Retry one store call the way object copies are retried: transient failures only, with a doubling pause."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from airflow_multicloud.errors import is_transient
from airflow_multicloud.replication.copy import CopyOptions

log = logging.getLogger(__name__)

T = TypeVar("T")


def with_retries(call: Callable[[], T], what: str, opts: CopyOptions) -> T:
    """``call()``, tried again up to ``opts.object_retries`` times while it fails transiently (5xx, throttling,
    a reset connection); the last error, or the first that retrying cannot cure, propagates."""
    attempt = 1
    while True:
        try:
            return call()
        except Exception as exc:
            if attempt > opts.object_retries or not is_transient(exc):
                raise
            log.warning("attempt %d to %s failed, retrying: %s", attempt, what, exc)
            time.sleep(opts.retry_backoff * (2 ** (attempt - 1)))
            attempt += 1
