"""A copy killed mid-way resumes from the parts the destination already holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from airflow_multicloud.checksums import Crc64
from airflow_multicloud.stores.base import MiB

SIZE = 200 * MiB
PART = 8 * MiB
PARTS = SIZE // PART


def _blocks(n: int, size: int = MiB) -> Any:
    seed = os.urandom(size)
    for i in range(n):
        yield seed[i % 251 :] + seed[: i % 251]


def _replicate(services: dict[str, Any], src: str, dst: str, bandwidth: str | None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    for name, conn_id in (("cos", "cos_default"), ("oss", "oss_default")):
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(services[name].connection(conn_id))
    cmd = [
        sys.executable,
        "-m",
        "airflow_multicloud.cli.main",
        "replicate",
        src,
        dst,
        "--threshold",
        "8MiB",
        "--part-size",
        "8MiB",
        "--part-concurrency",
        "2",
        "--progress-interval",
        "0",
    ]
    if bandwidth:
        cmd += ["--bandwidth", bandwidth]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _part_uploads(svc: Any) -> int:
    return sum(1 for r in svc.requests if r.operation == "UploadPart" and r.status == 200)


def test_killed_copy_resumes_without_resending_stored_parts(clean_services: dict[str, Any]) -> None:
    cos, oss = clean_services["cos"], clean_services["oss"]
    src_bucket, dst_bucket = cos.create_bucket(), oss.create_bucket()
    src_store = cos.store(src_bucket)
    crc = Crc64()
    blocks = list(_blocks(SIZE // MiB))
    for b in blocks:
        crc.update(b)
    src_store.write("ds/big.bin", iter(blocks))
    del blocks
    src, dst = f"cos://{src_bucket}/ds/", f"oss://{dst_bucket}/ds/"

    proc = _replicate(clean_services, src, dst, bandwidth="40MiB")
    deadline = time.monotonic() + 120
    while _part_uploads(oss) < 6 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = _part_uploads(oss)
    assert 6 <= first < PARTS, f"the kill should land mid-copy, saw {first} parts"

    dst_store = oss.store(dst_bucket)
    (upload,) = [u for u in dst_store.list_multipart_uploads("ds/") if u.key == "ds/big.bin"]
    stored = len(dst_store.list_parts("ds/big.bin", upload.upload_id))
    assert stored >= 6

    oss.clear_log()
    done = _replicate(clean_services, src, dst, bandwidth=None)
    out, _ = done.communicate(timeout=300)
    assert done.returncode == 0, out.decode()[-3000:]
    assert _part_uploads(oss) == PARTS - stored, "only the parts not yet stored are sent again"
    head = dst_store.head("ds/big.bin")
    assert (head.size, head.crc64) == (SIZE, crc.value)
    assert not [u for u in dst_store.list_multipart_uploads("ds/")], "no unfinished upload left behind"
