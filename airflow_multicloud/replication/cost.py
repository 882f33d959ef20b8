"""What a run will cost, known before it starts: requests and egress from the plan, priced from a dated table.

The counts follow what the engine sends (measured against the local servers' request logs, 2026-12): the source is
listed once and each object to copy is read with one GET whatever the number of destinations (plus the HEADs that
prove a multipart source); each copy is one PUT, or, from the multipart threshold on, one ListMultipartUploads
(resume check), one initiate, one UploadPart per part and one complete, and on COS and OSS a verifying HEAD; each
destination is listed, swept for stale uploads once and gets one manifest PUT.
Egress is paid once per object read, at the source's price, unless every copy of it is a server-side copy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from airflow_multicloud.errors import MulticloudError
from airflow_multicloud.replication.consolidate import ManifestRetention
from airflow_multicloud.replication.manifest import is_consolidated
from airflow_multicloud.replication.model import Location, Plan

GB = 1e9
LIST_PAGE = 1000
#: region prefixes priced as mainland China (S3 cn-*, OSS cn-*, COS's mainland regions)
_CHINA = ("cn-", "ap-beijing", "ap-shanghai", "ap-guangzhou", "ap-chengdu", "ap-chongqing", "ap-nanjing")
_STATUS_REQUESTS = {"s3": 2, "cos": 1, "oss": 1}
_PRICE_OF = {"list": "list", "get": "get", "head": "head", "put": "put", "parts": "put", "multipart": "put"}


class BudgetExceededError(MulticloudError, ValueError):
    """The estimate is above ``max_cost``: nothing was copied."""


@dataclass
class Requests:
    list: int = 0
    get: int = 0
    put: int = 0
    parts: int = 0  # UploadPart
    multipart: int = 0  # ListMultipartUploads + initiate + complete
    head: int = 0

    @property
    def total(self) -> int:
        return self.list + self.get + self.put + self.parts + self.multipart + self.head

    def priced(self, prices: dict[str, float]) -> float:
        return sum(getattr(self, name) * prices.get(f"{cls}_per_1000", 0.0) / 1000 for name, cls in _PRICE_OF.items())


@dataclass
class _Side:
    cloud: str
    region_class: str
    requests: Requests = field(default_factory=Requests)


def load_pricing(path: str | None = None) -> dict[str, Any]:
    """The shipped table (``airflow_multicloud/data/pricing.json``), or the user's file of the same shape."""
    if path:
        try:
            return dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise ValueError(f"pricing={path!r} cannot be read as a JSON pricing table: {exc}") from None
    return dict(json.loads(resources.files("airflow_multicloud").joinpath("data/pricing.json").read_text()))


def region_class(loc: Location) -> str:
    region = str(getattr(loc.store, "region", "") or "")
    return "china" if region.startswith(_CHINA) else "standard"


def _prices(table: dict[str, Any], side: _Side) -> dict[str, float]:
    cloud = table.get("clouds", {}).get(side.cloud, {})
    found = cloud.get(side.region_class) or cloud.get("standard")
    if found is None:
        raise ValueError(f"the pricing table (as of {table.get('as_of')}) has no prices for {side.cloud!r}")
    return dict(found)


def _server_side(source: Location, dest: Location) -> bool:
    return source.store.endpoint_id == dest.store.endpoint_id and source.store.scheme != "file"


def _manifest_requests(names: Sequence[str], every: int) -> tuple[int, int]:
    """GETs of a replica's manifest chain: those that read it before the run, and those of a consolidation after
    it (0 when none is due), which reads the consolidated manifest and every run manifest after it, this run's
    included, and writes one more object (docs/manifests.md)."""
    base = max((n for n in names if is_consolidated(n)), default=None)
    newer = [n for n in names if not is_consolidated(n) and (base is None or n > base)]
    chain = len(newer) + (1 if base else 0)
    due = base is None or len(newer) + 1 >= every
    return chain, (chain + 1 if due else 0)


def estimate(
    source: Location,
    destinations: Sequence[Location],
    plan: Plan,
    *,
    pricing: dict[str, Any] | None = None,
    retention_checked: bool = False,
) -> dict[str, Any]:
    """Requests per side, egress bytes and a price for copying what ``plan`` says; JSON-ready.

    ``retention_checked``: each destination was asked for its lock configuration (S3 also for its versioning).
    """
    table = pricing or load_pricing()
    src = _Side(source.store.scheme, region_class(source))
    src.requests.list = max(1, math.ceil(plan.objects / LIST_PAGE))
    threshold = min(d.store.transfer.multipart_threshold for d in destinations)
    tally = _tally(source, destinations, plan, threshold)
    src.requests.get = tally.gets
    # a multipart source's proof: S3 asks for its part layout and checksums (3 HEADs), COS/OSS for their CRC64
    src.requests.head = (3 if source.store.scheme == "s3" else 1) * tally.large_gets
    pairs = []
    sides = [src]
    for d, dest in enumerate(destinations):
        side = _Side(dest.store.scheme, region_class(dest))
        # objects skipped everywhere on an earlier record are only counted in the plan, not kept as entries
        existing = tally.existing[d] + plan.skipped.get(d, 0) + len(plan.extras.get(d, []))
        r = side.requests
        # the manifest folder is listed on its own first, so its records stream in key order beside the objects
        r.list = 1 + max(1, math.ceil(existing / LIST_PAGE))
        r.multipart = 1  # the sweep of stale multipart uploads before the run
        read, consolidated = _manifest_requests(plan.manifests.get(d, []), ManifestRetention().consolidate_every)
        r.get = read + consolidated + (_STATUS_REQUESTS.get(dest.store.scheme, 0) if retention_checked else 0)
        r.put += 1 if consolidated else 0
        copies, large = tally.copies[d], tally.large[d]
        # COS and OSS prove a write with a HEAD for the whole-object CRC64; S3's answers prove it already
        r.head += copies if dest.store.native_crc64 else 0
        r.multipart += 3 * large
        r.parts += tally.parts[d]
        r.put += copies - large
        r.put += 1  # the manifest
        r.put += _retention_puts(dest, copies, large)
        sides.append(side)
        pairs.append(
            {
                "source": source.uri,
                "destination": dest.uri,
                "objects": copies,
                "bytes": tally.bytes[d],
                "egress_bytes": 0 if _server_side(source, dest) else tally.bytes[d],
                "requests": vars(r).copy(),
            }
        )
    egress = tally.egress
    egress_price = egress / GB * _prices(table, src).get("egress_per_gb", 0.0)
    request_price = sum(s.requests.priced(_prices(table, s)) for s in sides)
    return {
        "currency": table.get("currency", "USD"),
        "pricing_as_of": table.get("as_of"),
        "egress_bytes": egress,
        "requests": {"source": vars(src.requests).copy(), "total": sum(s.requests.total for s in sides)},
        "pairs": pairs,
        "egress_cost": round(egress_price, 6),
        "request_cost": round(request_price, 6),
        "total_cost": round(egress_price + request_price, 6),
    }


def _retention_puts(dest: Location, copies: int, large: int) -> int:
    """COS sets retention with one PUT Object Retention per object; S3 re-states it after each multipart upload."""
    if dest.store.retention is None:
        return 0
    if dest.store.scheme == "cos":
        return copies + 1  # the manifest is written under the same retention
    if dest.store.scheme == "s3":
        return large
    return 0


@dataclass
class _Tally:
    """The plan's copies counted in one pass over its entries (a spool: read once, never held)."""

    gets: int = 0
    large_gets: int = 0  # source objects at or above the multipart threshold
    egress: int = 0
    existing: list[int] = field(default_factory=list)  # per destination: skips and conflicts kept as entries
    copies: list[int] = field(default_factory=list)
    large: list[int] = field(default_factory=list)  # copies at or above the destination's multipart threshold
    parts: list[int] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)


def _tally(source: Location, destinations: Sequence[Location], plan: Plan, threshold: int) -> _Tally:
    n = len(destinations)
    t = _Tally(existing=[0] * n, copies=[0] * n, large=[0] * n, parts=[0] * n, bytes=[0] * n)
    remote = [not _server_side(source, dest) for dest in destinations]
    for e in plan.entries:
        size, work = e.obj.size, False
        for d, a in e.actions.items():
            if a in ("skip", "conflict"):
                t.existing[d] += 1
            elif a == "copy":
                work = True
                dest = destinations[d]
                t.copies[d] += 1
                t.bytes[d] += size
                if size >= dest.store.transfer.multipart_threshold:
                    t.large[d] += 1
                    t.parts[d] += max(1, math.ceil(size / dest.store.transfer.part_size))
            else:
                work = work or a == "invalid-key"
        if work:
            t.gets += 1
            t.large_gets += size >= threshold
            t.egress += size if any(a == "copy" and remote[d] for d, a in e.actions.items()) else 0
    return t


def check_budget(cost: dict[str, Any], max_cost: float | None) -> None:
    if max_cost is not None and cost["total_cost"] > max_cost:
        raise BudgetExceededError(
            f"the run is estimated at {cost['total_cost']} {cost['currency']} (egress {cost['egress_bytes']} bytes, "
            f"{cost['requests']['total']} requests; prices as of {cost['pricing_as_of']}), above max_cost={max_cost}; "
            "nothing was copied. Raise max_cost, narrow the run, or pass pricing= with your own prices."
        )


def describe(cost: dict[str, Any]) -> str:
    """One line per pair for the dry run."""
    lines = [
        f"estimated cost: {cost['total_cost']} {cost['currency']} (egress {cost['egress_bytes'] / GB:.3f} GB = "
        f"{cost['egress_cost']}, requests {cost['requests']['total']} = {cost['request_cost']}; "
        f"prices as of {cost['pricing_as_of']})"
    ]
    for p in cost["pairs"]:
        r = p["requests"]
        lines.append(
            f"  {p['source']} -> {p['destination']}: {p['objects']} objects, {p['bytes']} bytes, egress "
            f"{p['egress_bytes']} bytes; PUT {r['put']}, parts {r['parts']}, multipart {r['multipart']}, "
            f"HEAD {r['head']}, LIST {r['list']}, GET {r['get']}"
        )
    return "\n".join(lines)
