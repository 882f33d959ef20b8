"""The multipart operations of the local OSS server: initiate, upload part (and part copy), list parts and
uploads, complete, abort."""

from __future__ import annotations

from multicloud_testbed import disk
from multicloud_testbed import oss_xml as xml
from multicloud_testbed.oss_protocol import MAX_PART_NUMBER, MIN_PART_SIZE, OssFailure, OssHandlerBase


class MultipartHandler(OssHandlerBase):
    """The multipart operations; routing is the subclass's."""

    def _list_uploads(self) -> None:
        max_uploads = self._max("max-uploads", 1000)
        key_marker, id_marker = self.query.get("key-marker", ""), self.query.get("upload-id-marker", "")
        uploads = self.server.buckets.list_uploads(self.bucket, self.query.get("prefix", ""))
        if key_marker:
            ids = [u.upload_id for u in uploads]
            if id_marker in ids:
                uploads = uploads[ids.index(id_marker) + 1 :]
            else:
                uploads = [u for u in uploads if u.key > key_marker]
        page = uploads[:max_uploads]
        self._ok(xml.list_uploads(self.bucket, self.query, max_uploads, page, len(uploads) > max_uploads))

    def _upload(self) -> disk.Upload:
        up = self.server.buckets.upload(self.query.get("uploadId", ""))
        if up.bucket != self.bucket or up.key != self.key:
            raise disk.NoSuchUpload(up.upload_id)
        return up

    def _part_number(self) -> int:
        try:
            number = int(self.query.get("partNumber", ""))
        except ValueError:
            number = 0
        if not 1 <= number <= MAX_PART_NUMBER:
            raise OssFailure(400, "InvalidArgument", f"partNumber must be an integer from 1 to {MAX_PART_NUMBER}")
        return number

    def _initiate(self) -> None:
        up = self.server.buckets.create_upload(
            self.bucket,
            self.key,
            content_type=self.headers.get("Content-Type") or "application/octet-stream",
            metadata=self._user_metadata(),
        )
        self._ok(xml.initiate(self.bucket, self.key, up.upload_id, self.query.get("encoding-type") == "url"))

    def _upload_part(self) -> None:
        up, number = self._upload(), self._part_number()
        part = self.server.buckets.put_part(
            up.upload_id, number, self._body(), self.body_length, self._content_md5_hex()
        )
        self._ok(headers=self._written(part.etag, part.crc64))

    def _upload_part_copy(self) -> None:
        up, number = self._upload(), self._part_number()
        src_bucket, src_key = self._copy_source()
        src = self.server.buckets.head(src_bucket, src_key)
        spec = self.headers.get("x-oss-copy-source-range", "")
        start, end = 0, src.size - 1
        if spec:
            first, _, last = spec.removeprefix("bytes=").partition("-")
            try:
                start, end = int(first), int(last) if last else src.size - 1
            except ValueError:
                raise OssFailure(400, "InvalidArgument", f"bad x-oss-copy-source-range {spec!r}") from None
            if not 0 <= start <= end < src.size:
                raise OssFailure(416, "InvalidRange", "The requested range cannot be satisfied.")
        part = self.server.buckets.copy_part(up.upload_id, number, src_bucket, src_key, start, end)
        self._ok(xml.copy_result("CopyPartResult", part.etag, part.last_modified), self._written(part.etag, part.crc64))

    def _list_parts(self) -> None:
        up = self._upload()
        max_parts = self._max("max-parts", 1000)
        try:
            marker = int(self.query.get("part-number-marker") or 0)
        except ValueError:
            raise OssFailure(400, "InvalidArgument", "part-number-marker must be an integer") from None
        after = [up.parts[n] for n in sorted(up.parts) if n > marker]
        self._ok(xml.list_parts(up, marker, max_parts, after[:max_parts], len(after) > max_parts))

    def _complete(self) -> None:
        up = self._upload()
        if self.headers.get("x-oss-complete-all", "").lower() == "yes":
            self._read_body()
            parts = [(n, up.parts[n].etag) for n in sorted(up.parts)]
        else:
            root = self._xml_body()
            try:
                parts = [(int(p.findtext("PartNumber") or ""), p.findtext("ETag") or "") for p in root.findall("Part")]
            except ValueError:
                raise OssFailure(400, "MalformedXML", "PartNumber must be an integer") from None
        if [n for n, _ in parts] != sorted({n for n, _ in parts}):
            raise OssFailure(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        for number, _ in parts[:-1]:
            if number in up.parts and up.parts[number].size < MIN_PART_SIZE:
                raise OssFailure(400, "EntityTooSmall", f"Part {number} is smaller than {MIN_PART_SIZE} bytes.")
        self.guard(self.key)
        obj = self.server.buckets.complete(up.upload_id, parts)
        body = xml.complete(self.bucket, obj, self.server.endpoint, self.query.get("encoding-type") == "url")
        self._ok(body, self._written(obj.etag, obj.crc64))

    def _abort(self) -> None:
        self.server.buckets.abort(self._upload().upload_id)
        self._ok(status=204)
