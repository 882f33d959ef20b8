"""OSS bucket retention (WORM) on the local OSS server: InitiateBucketWorm (``POST ?worm``), CompleteBucketWorm
(``POST ?wormId=``), ExtendBucketWorm (``POST ?wormId=&wormExtend``), GetBucketWorm and AbortBucketWorm.

OSS locks at bucket level: while a policy exists (``InProgress`` protects already; ``Locked`` cannot be removed),
an object modified less than the period ago cannot be deleted or overwritten: 409 FileImmutable, as OSS answers.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from multicloud_testbed.locks import Worm
from multicloud_testbed.oss_protocol import OssFailure, OssHandlerBase
from multicloud_testbed.oss_xml import Doc

MAX_DAYS = 25550  # 70 years, the OSS limit


class WormOps(OssHandlerBase):
    def _worm_days(self, root_tag: str) -> int:
        try:
            root = ET.fromstring(self._read_body())
        except ET.ParseError:
            raise OssFailure(400, "MalformedXML", "The XML you provided was not well-formed.") from None
        days = (root.findtext("RetentionPeriodInDays") or "") if root.tag == root_tag else ""
        if not days.isdigit() or not 1 <= int(days) <= MAX_DAYS:
            raise OssFailure(400, "InvalidArgument", f"RetentionPeriodInDays must be 1-{MAX_DAYS}.")
        return int(days)

    def _existing_worm(self, worm_id: str | None = None) -> Worm:
        worm = self.server.locks.worm(self.bucket)
        if worm is None or (worm_id is not None and worm.worm_id != worm_id):
            raise OssFailure(404, "NoSuchWORMConfiguration", "The WORM Configuration does not exist.")
        return worm

    def _init_worm(self) -> None:
        days = self._worm_days("InitiateWormConfiguration")
        if self.server.locks.worm(self.bucket) is not None:
            raise OssFailure(409, "WORMConfigurationAlreadyExist", "The bucket already has a WORM configuration.")
        worm = self.server.locks.initiate_worm(self.bucket, days)
        self._ok(headers={"x-oss-worm-id": worm.worm_id})

    def _complete_worm(self) -> None:
        self._read_body()
        if self._existing_worm(self.query.get("wormId", "")).state == "Locked":
            raise OssFailure(409, "WORMConfigurationLocked", "The WORM configuration is locked already.")
        self.server.locks.update_worm(self.bucket, state="Locked")
        self._ok()

    def _extend_worm(self) -> None:
        days = self._worm_days("ExtendWormConfiguration")
        worm = self._existing_worm(self.query.get("wormId", ""))
        if worm.state != "Locked" or days <= worm.days:
            raise OssFailure(400, "InvalidArgument", "Only a locked WORM configuration can be extended, to more days.")
        self.server.locks.update_worm(self.bucket, days=days)
        self._ok()

    def _abort_worm(self) -> None:
        if self._existing_worm().state == "Locked":
            raise OssFailure(409, "WORMConfigurationLocked", "A locked WORM configuration cannot be deleted.")
        self.server.locks.abort_worm(self.bucket)
        self._ok(status=204)

    def _get_worm(self) -> None:
        worm = self._existing_worm()
        doc = Doc("WormConfiguration")
        doc.add("WormId", worm.worm_id)
        doc.add("State", worm.state)
        doc.add("RetentionPeriodInDays", str(worm.days))
        doc.add("CreationDate", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(worm.created)))
        self._ok(doc.to_bytes())
