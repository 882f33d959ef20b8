"""The first copy starts before the listing ends, as the COS server's request log shows: a synthetic source of four
listing pages, each list request delayed, and the destination's first PUT arriving before the source's last page is
asked for; a run that must plan everything first (a cost budget) asks for every page before its first PUT."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_multicloud.replication.engine import ReplicationOptions, replicate
from airflow_multicloud.replication.model import Location
from airflow_multicloud.replication.plan import Filters
from multicloud_testbed.synthetic import SyntheticSpec

SPEC = SyntheticSpec(count=3500, size=40, seed=5, prefix="data/", suffix=".bin")  # four pages of at most 1,000


@pytest.mark.parametrize("budget", [None, 1e6], ids=["copies-while-listing", "plan-first"])
def test_the_first_put_comes_before_the_last_listing_page(clean_services: dict[str, Any], budget: float | None) -> None:
    cos = clean_services["cos"]
    source_bucket, dest_bucket = cos.synthetic_bucket(SPEC), cos.create_bucket()
    source = Location(cos.store(source_bucket), "data/")
    dest = Location(cos.store(dest_bucket), "copy/")
    # the 50 objects copied all sit in the first page; every page of the source takes a while to come
    options = ReplicationOptions(
        progress_interval=0, max_cost=budget, filters=Filters(include=["00[0-4]*"]), copy=_no_server_side()
    )
    cos.faults.add("latency", latency=0.3, operation="ListObjects")
    summary = replicate(source, [dest], options)
    assert (summary.copied, summary.objects) == (50, 50)
    log = [(r.operation, r.bucket) for r in cos.requests]
    pages = [i for i, (op, bucket) in enumerate(log) if (op, bucket) == ("ListObjects", source_bucket)]
    puts = [i for i, (op, bucket) in enumerate(log) if (op, bucket) == ("PutObject", dest_bucket)]
    assert len(pages) == 4 and len(puts) == 50 + 2  # the objects, the manifest and its first consolidation
    if budget is None:
        assert puts[0] < pages[-1], "no copy was sent before the last listing page"
        assert summary.first_copy_s is not None
    else:
        assert puts[0] > pages[-1]


def _no_server_side() -> Any:
    """Copies read and write (a same-server copy would be a CopyObject, not the PUT this test looks for)."""
    from airflow_multicloud.replication.copy import CopyOptions

    return CopyOptions(server_side=False)
