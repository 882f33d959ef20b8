"""One local object server (S3 via moto, COS or OSS) in its own process, driven over stdin/stdout.

Started by ``bench/run.py``; never run by hand. It prints one JSON line when ready
(``{"endpoint": ..., "connection": {...}}``), then answers one JSON line per command read from stdin:

- ``stats``: ``{"get_bytes": object bytes served by GETs, "put_bytes": request body bytes received,
  "ops": {operation: count}}`` since the last ``clear``;
- ``clear``: empty the request log (also keeps memory bounded between benchmarks);
- ``bucket NAME``: create a bucket;
- ``synthetic NAME {spec}`` (COS/OSS): create a synthetic bucket, ``spec`` the JSON of a
  :class:`~multicloud_testbed.synthetic.SyntheticSpec` (``bench/scale.py``);
- ``manifest NAME`` (COS/OSS): write, in that synthetic bucket, the consolidated manifest a replication run would have
  left after verifying every generated object there (``status: copied``), so a rerun skips them all by manifest;
- ``latency SECONDS OPERATION``: delay every request of that operation (``latency 0 -`` removes all faults).

End of stdin (the parent went away) or SIGTERM stops the server and the process.
"""

from __future__ import annotations

import argparse
import gzip
import json
import signal
import sys
import tempfile
import threading
from collections import Counter
from typing import Any

from multicloud_testbed.cos_server import CosService
from multicloud_testbed.oss_server import OssService
from multicloud_testbed.s3_server import S3Service
from multicloud_testbed.synthetic import SyntheticSpec


def _start(kind: str, root: str | None) -> Any:
    if kind == "s3":
        svc = S3Service(port=0)
        threading.Thread(target=svc._server.serve_forever, name="s3", daemon=True).start()
        return svc
    if kind == "cos":
        return CosService(root=root, port=0).start()
    return OssService(root=root, port=0).start()


def _stats(svc: Any) -> dict[str, Any]:
    records = list(svc.requests)
    ops = Counter(r.operation for r in records)
    return {
        "get_bytes": sum(r.body_bytes_out for r in records if r.method == "GET"),
        "put_bytes": sum(r.bytes_in for r in records if r.method in ("PUT", "POST")),
        "ops": dict(ops),
    }


def _manifest(svc: Any, bucket: str) -> dict[str, Any]:
    """The consolidated manifest a replica holds after its first run (replication/manifest.py: gzip JSON Lines,
    key-sorted, every generated object verified), written in the server, never in memory whole."""
    syn = svc.server.buckets._synthetic[bucket]
    spec = syn.spec
    key = f"{spec.prefix}_multicloud/manifests/20260101T000000000000Z-bench-prefill.consolidated.jsonl.gz"
    with tempfile.TemporaryFile() as f:
        header = {"type": "header", "format": 2, "kind": "consolidated", "run_id": "bench-prefill",
                  "complete": True, "covers": []}  # fmt: skip
        f.write(gzip.compress(json.dumps(header, sort_keys=True).encode() + b"\n"))
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=6) as gz:
            for i in range(spec.count):  # generated keys sort as their indexes do (zero-padded)
                obj = syn.lookup(syn.keys[i])
                rec = {
                    "type": "object",
                    "key": obj.key[len(spec.prefix) :],
                    "size": obj.size,
                    "crc64": obj.crc64,
                    "md5": obj.etag,
                    "source_etag": obj.etag,
                    "dest_etag": obj.etag,
                    "status": "copied",
                    "verified_by": ["crc64", "etag-md5"],
                }
                gz.write(json.dumps(rec, sort_keys=True).encode() + b"\n")
        size = f.tell()
        f.seek(0)
        svc.server.buckets.put(bucket, key, f, size, content_type="application/gzip")
    return {"key": key, "bytes": size}


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["s3", "cos", "oss"])
    parser.add_argument("--root", help="COS/OSS: keep objects in this folder")
    args = parser.parse_args()
    svc = _start(args.kind, args.root)
    signal.signal(signal.SIGTERM, _interrupt)
    print(json.dumps({"endpoint": svc.endpoint, "connection": svc.connection(f"{args.kind}_bench")}), flush=True)
    try:
        for line in sys.stdin:
            cmd, _, arg = line.strip().partition(" ")
            out: dict[str, Any]
            try:
                if cmd == "stats":
                    out = _stats(svc)
                elif cmd == "clear":
                    svc.clear_log()
                    out = {"ok": True}
                elif cmd == "bucket":
                    out = {"bucket": svc.create_bucket(arg)}
                elif cmd == "synthetic":
                    name, _, spec = arg.partition(" ")
                    out = {"bucket": svc.synthetic_bucket(SyntheticSpec(**json.loads(spec)), name)}
                elif cmd == "manifest":
                    out = _manifest(svc, arg)
                elif cmd == "latency":
                    seconds, _, operation = arg.partition(" ")
                    svc.faults.clear()
                    if float(seconds) > 0:
                        svc.faults.add("latency", latency=float(seconds), operation=operation)
                    out = {"ok": True}
                else:
                    out = {"error": f"unknown command {cmd!r}"}
            except Exception as exc:
                out = {"error": f"{cmd}: {type(exc).__name__}: {exc}"}
            print(json.dumps(out), flush=True)
    except KeyboardInterrupt:  # SIGTERM from bench/run.py, or Ctrl-C
        pass
    finally:
        if args.kind == "s3":
            svc._server.shutdown()
            svc._server.server_close()
        else:
            svc.stop()


if __name__ == "__main__":
    main()
