"""Checks of the options a user gives, shared by ``multicloud`` and the operators: each names the argument, the
value it got and what it takes, and runs before anything is read or written.

Operators call these from ``__init__`` for plain arguments and from ``execute`` for templated ones (a template is
only a string until it is rendered).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow_multicloud.errors import InvalidArgumentError
from airflow_multicloud.stores.base import MiB, TransferConfig

#: S3 and COS refuse multipart parts under 5 MiB (but the last) and over 5 GiB; OSS takes 100 KiB and up
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB


def whole(name: str, value: Any, minimum: int = 0) -> int:
    """``value`` as an int of at least ``minimum``; a bool, a float or a string is refused, not converted."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(
            f"{name}={value!r} must be a whole number (int), not {type(value).__name__}: e.g. {name}={max(minimum, 1)}"
        )
    if value < minimum:
        raise InvalidArgumentError(f"{name}={value} must be at least {minimum}")
    return value


def number(name: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{name}={value!r} must be a number, not {type(value).__name__}")
    if not value >= minimum:  # also refuses NaN
        raise InvalidArgumentError(f"{name}={value} must be at least {minimum:g}")
    return float(value)


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name}={value!r} must be True or False, not {type(value).__name__}")
    return value


def globs(name: str, value: Any) -> None:
    """None or a list of glob strings; a bare string would be read as one glob per character, so it is refused."""
    if value is None:
        return
    if not isinstance(value, list | tuple) or not all(isinstance(g, str) and g for g in value):
        raise InvalidArgumentError(f"{name}={value!r} must be a list of non-empty globs, e.g. {name}=['*.csv']")


def age(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, timedelta) or value < timedelta(0)):
        raise InvalidArgumentError(f"{name}={value!r} must be a non-negative timedelta, e.g. timedelta(minutes=15)")


def folder(name: str, value: Any) -> str:
    """A folder under a dataset's prefix: relative, ending in '/', without '..'."""
    if not isinstance(value, str) or not value.endswith("/") or value.startswith("/") or ".." in value.split("/"):
        raise InvalidArgumentError(f"{name}={value!r} must be a relative folder ending in '/', e.g. '_multicloud/x/'")
    return value


def transfer(multipart_threshold: Any, part_size: Any, part_concurrency: Any) -> TransferConfig:
    """The upload settings, refused up front where a cloud would refuse the parts half-way through a copy."""
    whole("multipart_threshold", multipart_threshold, 1)
    whole("part_size", part_size, 1)
    whole("part_concurrency", part_concurrency, 1)
    if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
        raise InvalidArgumentError(
            f"part_size={part_size} bytes is outside what S3 and COS accept for multipart parts (5 MiB to 5 GiB): "
            "use e.g. 8MiB"
        )
    return TransferConfig(multipart_threshold, part_size, part_concurrency)


def uris(name: str, value: Any) -> list[str]:
    """One dataset URI or a non-empty list of them (checked once templates are rendered)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items or not all(isinstance(u, str) and u for u in items):
        raise InvalidArgumentError(
            f"{name}={value!r} must be a dataset URI or a non-empty list of them, e.g. ['cos://backup-1250000000/x/']"
        )
    return list(items)


def conn_ids(name: str, value: Any) -> None:
    """None (the scheme's default), one connection id, or a list of ids (None for a default)."""
    items = [value] if value is None or isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(c is None or (isinstance(c, str) and c) for c in items):
        raise InvalidArgumentError(f"{name}={value!r} must be a connection id, a list of them, or None")
