"""Client CPU per small S3 -> S3 copy with boto3 (as ``stores/s3_client.py`` builds it), with obstore, and with the
S3 store itself (GET and PUT through obstore, or all through boto3), one run.

``.venv/bin/python bench/client_cpu.py [N]`` seeds N x 16 KiB (default 1000) into one moto process and copies them to
another, once per client and round, each in a child. Every copy does what the engine's small copy does: GET, MD5 of
the bytes against the listed ETag, PUT with the engine's metadata, the PUT answer's ETag against that MD5. The
``store-*`` clients go through ``S3Store`` as the engine does (``read``, then ``write`` and ``prove_write``, which
add the CRC64 and the ETag check), with ``data_client="obstore"`` (the default) or ``"boto3"``. The figure is the
child's process CPU (every thread, Rust ones included) over the copies, per object. Issue 13, bench/README.md.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

META = {"multicloud-crc64": "0000000000000000", "multicloud-source-size": "16384"}


def _boto3(src_ep: str, dst_ep: str, bucket: str, prefix: str) -> tuple[list[tuple[str, str]], Any]:
    from airflow_multicloud.stores.s3_client import make_client
    from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

    src = make_client(ACCESS_KEY, SECRET_KEY, None, "us-east-1", src_ep)
    dst = make_client(ACCESS_KEY, SECRET_KEY, None, "us-east-1", dst_ep)
    pages = src.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [(o["Key"], o["ETag"].strip('"')) for p in pages for o in p.get("Contents", [])]

    def one(item: tuple[str, str]) -> int:
        key, etag = item
        body = src.get_object(Bucket=bucket, Key=key)["Body"].read()
        md5 = hashlib.md5(body).hexdigest()
        if md5 != etag:
            raise SystemExit(f"{key}: read MD5 {md5}, listed {etag}")
        answer = dst.put_object(Bucket=bucket, Key=key, Body=body, Metadata=META)
        if answer["ETag"].strip('"') != md5:
            raise SystemExit(f"{key}: stored ETag {answer['ETag']}, sent MD5 {md5}")
        return len(body)

    return keys, one


def _obstore(src_ep: str, dst_ep: str, bucket: str, prefix: str) -> tuple[list[tuple[str, str]], Any]:
    import obstore
    from obstore.store import S3Store

    from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

    def store(endpoint: str) -> Any:
        return S3Store(
            bucket,
            endpoint=endpoint,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            region="us-east-1",
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )

    src, dst = store(src_ep), store(dst_ep)
    keys = [(o["path"], str(o["e_tag"]).strip('"')) for batch in obstore.list(src, prefix) for o in batch]

    def one(item: tuple[str, str]) -> int:
        key, etag = item
        body = obstore.get(src, key).bytes()
        md5 = hashlib.md5(body).hexdigest()
        if md5 != etag:
            raise SystemExit(f"{key}: read MD5 {md5}, listed {etag}")
        answer = obstore.put(dst, key, body, attributes=META)  # type: ignore[arg-type]
        if str(answer["e_tag"]).strip('"') != md5:
            raise SystemExit(f"{key}: stored ETag {answer['e_tag']}, sent MD5 {md5}")
        return len(body)

    return keys, one


def _store(data_client: str) -> Any:
    def build(src_ep: str, dst_ep: str, bucket: str, prefix: str) -> tuple[list[tuple[str, str]], Any]:
        from airflow_multicloud.stores.base import normalize_etag, prove_write
        from airflow_multicloud.stores.s3 import S3Store
        from multicloud_testbed.services import ACCESS_KEY, SECRET_KEY

        src, dst = (
            S3Store.from_settings(
                bucket,
                access_key_id=ACCESS_KEY,
                secret_access_key=SECRET_KEY,
                region="us-east-1",
                endpoint_url=endpoint,
                data_client=data_client,
            )
            for endpoint in (src_ep, dst_ep)
        )
        keys = [(o.key, normalize_etag(o.etag)) for o in src.list(prefix)]

        def one(item: tuple[str, str]) -> int:
            key, etag = item
            chunks = list(src.read(key))
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            md5 = hashlib.md5(body).hexdigest()
            if md5 != etag:
                raise SystemExit(f"{key}: read MD5 {md5}, listed {etag}")
            prove_write(dst, dst.write(key, [body], metadata=META))  # raises unless the answer's ETag is the MD5
            return len(body)

        return keys, one

    return build


CLIENTS = {"boto3": _boto3, "obstore": _obstore, "store-boto3": _store("boto3"), "store-obstore": _store("obstore")}


def child(client: str, src_ep: str, dst_ep: str, bucket: str, prefix: str, threads: int) -> None:
    keys, one = CLIENTS[client](src_ep, dst_ep, bucket, prefix)
    cpu, wall = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(one, keys))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    n = len(keys)
    out = {"client": client, "objects": n, "bytes": total, "cpu_ms_per_object": round(cpu / n * 1000, 3)}
    print(json.dumps(out | {"objects_per_s": round(n / wall, 1)}), flush=True)


def main() -> int:
    import procs
    from procs import PYTHON, run_child
    from run import OUT, Ctx, Sizes, seed_s3, wipe

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    clients = list(CLIENTS)
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    ctx = Ctx(Sizes(0, 0, 0, n, 16384, 0, 0), OUT / "data-cpu", OUT / "logs")
    try:
        seed_s3(ctx, "bench-cpu", "small/", n, 16384)
        src, dst = ctx.server("s3src"), ctx.server("s3dst")
        for _ in range(2):
            for client in clients:
                res = run_child(
                    [PYTHON, __file__, "--child", client, src.endpoint, dst.endpoint, "bench-cpu", "small/"]
                )
                print(json.dumps(res.json()), flush=True)
                wipe(dst, "bench-cpu")
    finally:
        procs.stop_all()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:7], threads=16)
    else:
        sys.exit(main())
