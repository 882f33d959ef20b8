"""One local object server (S3 via moto, COS or OSS) in its own process, driven over stdin/stdout.

Started by ``bench/run.py``; never run by hand. It prints one JSON line when ready
(``{"endpoint": ..., "connection": {...}}``), then answers one JSON line per command read from stdin:

- ``stats``: ``{"get_bytes": object bytes served by GETs, "put_bytes": request body bytes received,
  "ops": {operation: count}}`` since the last ``clear``;
- ``clear``: empty the request log (also keeps memory bounded between benchmarks);
- ``bucket NAME``: create a bucket.

End of stdin (the parent went away) or SIGTERM stops the server and the process.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections import Counter
from typing import Any

from airflow_multicloud.testing.cos_server import CosService
from airflow_multicloud.testing.oss_server import OssService
from airflow_multicloud.testing.s3_server import S3Service


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
