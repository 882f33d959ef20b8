"""XML bodies of the local OSS server, with every element oss2's strict parsers look for."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from multicloud_testbed.disk import StoredObject, StoredPart, Upload

OWNER_ID = "1000000000000000"


def iso8601(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def oss_etag(etag: str) -> str:
    """OSS spells ETags in upper-case hex, quoted."""
    return f'"{etag.upper()}"'


def object_type(obj: StoredObject) -> str:
    return "Multipart" if obj.parts else "Normal"


class Doc:
    """A tiny builder: ``Doc("Root").add("Name", "x").to_bytes()``; ``url`` encodes names as encoding-type=url."""

    def __init__(self, root: str, url: bool = False) -> None:
        self.root = ET.Element(root)
        self.url = url

    def name(self, text: str) -> str:
        return quote(text, safe="/") if self.url else text

    def add(self, tag: str, text: object = "", parent: ET.Element | None = None) -> ET.Element:
        el = ET.SubElement(self.root if parent is None else parent, tag)
        el.text = "" if text is None else str(text)
        return el

    def group(self, tag: str, parent: ET.Element | None = None) -> ET.Element:
        return ET.SubElement(self.root if parent is None else parent, tag)

    def to_bytes(self) -> bytes:
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(
            self.root, encoding="utf-8", xml_declaration=False
        )


def error(code: str, message: str, request_id: str, host: str, extra: dict[str, str] | None = None) -> bytes:
    doc = Doc("Error")
    doc.add("Code", code)
    doc.add("Message", message)
    doc.add("RequestId", request_id)
    doc.add("HostId", host)
    for tag, text in (extra or {}).items():
        doc.add(tag, text)
    return doc.to_bytes()


def _contents(doc: Doc, objects: Iterable[StoredObject], owner: bool) -> None:
    for obj in objects:
        node = doc.group("Contents")
        doc.add("Key", doc.name(obj.key), node)
        doc.add("LastModified", iso8601(obj.last_modified), node)
        doc.add("ETag", oss_etag(obj.etag), node)
        doc.add("Type", object_type(obj), node)
        doc.add("Size", obj.size, node)
        doc.add("StorageClass", "Standard", node)
        if owner:
            own = doc.group("Owner", node)
            doc.add("ID", OWNER_ID, own)
            doc.add("DisplayName", OWNER_ID, own)


def _prefixes(doc: Doc, prefixes: Iterable[str]) -> None:
    for prefix in prefixes:
        doc.add("Prefix", doc.name(prefix), doc.group("CommonPrefixes"))


def list_objects_v1(
    bucket: str,
    params: dict[str, str],
    max_keys: int,
    page: tuple[list[StoredObject], list[str], bool, str],
) -> bytes:
    objects, prefixes, truncated, last = page
    doc = Doc("ListBucketResult", url=params.get("encoding-type") == "url")
    doc.add("Name", bucket)
    for tag, param in (("Prefix", "prefix"), ("Marker", "marker")):
        doc.add(tag, doc.name(params.get(param, "")))
    doc.add("MaxKeys", max_keys)
    doc.add("Delimiter", doc.name(params.get("delimiter", "")))
    if doc.url:
        doc.add("EncodingType", "url")
    doc.add("IsTruncated", str(truncated).lower())
    if truncated:
        doc.add("NextMarker", doc.name(last))
    _contents(doc, objects, owner=True)
    _prefixes(doc, prefixes)
    return doc.to_bytes()


def list_objects_v2(
    bucket: str,
    params: dict[str, str],
    max_keys: int,
    page: tuple[list[StoredObject], list[str], bool, str],
    next_token: str,
) -> bytes:
    objects, prefixes, truncated, _ = page
    doc = Doc("ListBucketResult", url=params.get("encoding-type") == "url")
    doc.add("Name", bucket)
    doc.add("Prefix", doc.name(params.get("prefix", "")))
    if params.get("start-after"):
        doc.add("StartAfter", doc.name(params["start-after"]))
    if params.get("continuation-token"):
        doc.add("ContinuationToken", params["continuation-token"])
    doc.add("MaxKeys", max_keys)
    doc.add("Delimiter", doc.name(params.get("delimiter", "")))
    if doc.url:
        doc.add("EncodingType", "url")
    doc.add("IsTruncated", str(truncated).lower())
    doc.add("KeyCount", len(objects) + len(prefixes))
    if truncated:
        doc.add("NextContinuationToken", next_token)
    _contents(doc, objects, owner=params.get("fetch-owner") == "true")
    _prefixes(doc, prefixes)
    return doc.to_bytes()


def initiate(bucket: str, key: str, upload_id: str, url: bool) -> bytes:
    doc = Doc("InitiateMultipartUploadResult", url=url)
    doc.add("Bucket", bucket)
    doc.add("Key", doc.name(key))
    doc.add("UploadId", upload_id)
    if url:
        doc.add("EncodingType", "url")
    return doc.to_bytes()


def list_parts(up: Upload, marker: int, max_parts: int, parts: Sequence[StoredPart], truncated: bool) -> bytes:
    doc = Doc("ListPartsResult")
    doc.add("Bucket", up.bucket)
    doc.add("Key", up.key)
    doc.add("UploadId", up.upload_id)
    doc.add("PartNumberMarker", marker)
    doc.add("NextPartNumberMarker", parts[-1].number if parts else marker)
    doc.add("MaxParts", max_parts)
    doc.add("IsTruncated", str(truncated).lower())
    for part in parts:
        node = doc.group("Part")
        doc.add("PartNumber", part.number, node)
        doc.add("LastModified", iso8601(part.last_modified), node)
        doc.add("ETag", oss_etag(part.etag), node)
        doc.add("HashCrc64ecma", part.crc64, node)
        doc.add("Size", part.size, node)
    return doc.to_bytes()


def list_uploads(
    bucket: str, params: dict[str, str], max_uploads: int, uploads: Sequence[Upload], truncated: bool
) -> bytes:
    doc = Doc("ListMultipartUploadsResult", url=params.get("encoding-type") == "url")
    doc.add("Bucket", bucket)
    doc.add("KeyMarker", doc.name(params.get("key-marker", "")))
    doc.add("UploadIdMarker", params.get("upload-id-marker", ""))
    doc.add("NextKeyMarker", doc.name(uploads[-1].key if truncated and uploads else ""))
    doc.add("NextUploadIdMarker", uploads[-1].upload_id if truncated and uploads else "")
    doc.add("Delimiter", doc.name(params.get("delimiter", "")))
    doc.add("Prefix", doc.name(params.get("prefix", "")))
    doc.add("MaxUploads", max_uploads)
    if doc.url:
        doc.add("EncodingType", "url")
    doc.add("IsTruncated", str(truncated).lower())
    for up in uploads:
        node = doc.group("Upload")
        doc.add("Key", doc.name(up.key), node)
        doc.add("UploadId", up.upload_id, node)
        doc.add("StorageClass", "Standard", node)
        doc.add("Initiated", iso8601(up.initiated), node)
    return doc.to_bytes()


def complete(bucket: str, obj: StoredObject, endpoint: str, url: bool) -> bytes:
    doc = Doc("CompleteMultipartUploadResult", url=url)
    if url:
        doc.add("EncodingType", "url")
    doc.add("Location", f"{endpoint}/{bucket}/{quote(obj.key, safe='')}")
    doc.add("Bucket", bucket)
    doc.add("Key", doc.name(obj.key))
    doc.add("ETag", oss_etag(obj.etag))
    return doc.to_bytes()


def copy_result(root: str, etag: str, last_modified: float) -> bytes:
    doc = Doc(root)
    doc.add("LastModified", iso8601(last_modified))
    doc.add("ETag", oss_etag(etag))
    return doc.to_bytes()


def delete_result(deleted: Sequence[str], url: bool) -> bytes:
    doc = Doc("DeleteResult", url=url)
    if url:
        doc.add("EncodingType", "url")
    for key in deleted:
        doc.add("Key", doc.name(key), doc.group("Deleted"))
    return doc.to_bytes()


def bucket_info(bucket: str, region: str, created: float, host: str) -> bytes:
    doc = Doc("BucketInfo")
    node = doc.group("Bucket")
    for tag, text in (
        ("AccessMonitor", "Disabled"),
        ("CreationDate", iso8601(created)),
        ("ExtranetEndpoint", host),
        ("IntranetEndpoint", host),
        ("Location", f"oss-{region}"),
        ("StorageClass", "Standard"),
        ("TransferAcceleration", "Disabled"),
        ("CrossRegionReplication", "Disabled"),
        ("Name", bucket),
        ("Comment", ""),
    ):
        doc.add(tag, text, node)
    owner = doc.group("Owner", node)
    doc.add("DisplayName", OWNER_ID, owner)
    doc.add("ID", OWNER_ID, owner)
    doc.add("Grant", "private", doc.group("AccessControlList", node))
    return doc.to_bytes()


def list_buckets(created: dict[str, float], region: str, host: str) -> bytes:
    doc = Doc("ListAllMyBucketsResult")
    owner = doc.group("Owner")
    doc.add("ID", OWNER_ID, owner)
    doc.add("DisplayName", OWNER_ID, owner)
    buckets = doc.group("Buckets")
    for name, when in created.items():
        node = doc.group("Bucket", buckets)
        for tag, text in (
            ("CreationDate", iso8601(when)),
            ("ExtranetEndpoint", host),
            ("IntranetEndpoint", host),
            ("Location", f"oss-{region}"),
            ("Name", name),
            ("Region", region),
            ("StorageClass", "Standard"),
        ):
            doc.add(tag, text, node)
    return doc.to_bytes()


def location(region: str) -> bytes:
    doc = Doc("LocationConstraint")
    doc.root.text = f"oss-{region}"
    return doc.to_bytes()
