"""Listing pages of the local COS and OSS: one page over sorted keys, and the merge of two pages (a synthetic
bucket's generated keys and the disk-backed ones written over them)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multicloud_testbed.disk import StoredObject

Page = tuple[list["StoredObject"], list[str], bool, str]


def page_of(
    keys: Sequence[str],
    lookup: Callable[[str], StoredObject | None],
    prefix: str,
    after: str,
    delimiter: str,
    max_keys: int,
) -> Page:
    """One listing page over sorted ``keys``; a key ``lookup`` does not find is not listed."""
    contents: list[StoredObject] = []
    prefixes: list[str] = []
    i = max(bisect_right(keys, after) if after else 0, bisect_left(keys, prefix))
    if delimiter and after.endswith(delimiter) and after.startswith(prefix):
        i = bisect_right(keys, after + "\U0010ffff")  # the marker was a common prefix: skip all below it
    last = ""
    while i < len(keys):
        key = keys[i]
        if not key.startswith(prefix):
            break
        if len(contents) + len(prefixes) >= max_keys:
            return contents, prefixes, True, last
        if delimiter:
            pos = key.find(delimiter, len(prefix))
            if pos >= 0:
                common = key[: pos + len(delimiter)]
                prefixes.append(common)
                last = common
                i = bisect_right(keys, common + "\U0010ffff")
                continue
        obj = lookup(key)
        if obj is not None:
            contents.append(obj)
            last = key
        i += 1
    return contents, prefixes, False, last


def merge_pages(
    a: Page,
    b: Page,
    max_keys: int,
) -> Page:
    """The first ``max_keys`` entries of two pages listed from the same point (each holds at most that many)."""
    entries: dict[str, StoredObject | None] = {}
    for objs, prefixes, _, _ in (a, b):
        entries.update((o.key, o) for o in objs if o.key not in entries)
        entries.update((p, None) for p in prefixes)
    names = sorted(entries)
    taken = names[:max_keys]
    contents = [o for o in (entries[n] for n in taken) if o is not None]
    prefixes = [n for n in taken if entries[n] is None]
    return contents, prefixes, a[2] or b[2] or len(names) > max_keys, taken[-1] if taken else ""
