"""Child processes of the benchmarks: local servers (one process each) and measured runs, all reaped on exit."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable

_live: set[subprocess.Popen[Any]] = set()

#: folder holding a candidate copy of ``airflow_multicloud`` to measure instead of the repo's (``--product``);
#: only the measured children use it, the servers always run the repo's code
PRODUCT: list[str] = []


def _stop(proc: subprocess.Popen[Any], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    _live.discard(proc)


def stop_all() -> None:
    """Stop every child still running (servers and measured runs), each by its own pid."""
    for proc in list(_live):
        _stop(proc)


def measured_env(**extra: str) -> dict[str, str]:
    env = base_env(**extra)
    env["PYTHONPATH"] = os.pathsep.join([*PRODUCT, str(REPO)])
    return env


def base_env(**extra: str) -> dict[str, str]:
    """This environment without AWS_* (rclone 1.60 fails on AWS_CA_BUNDLE; boto3 must not pick up real
    credentials) and without proxies, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k.lower() not in ("http_proxy", "https_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


class Server:
    """``bench/server.py KIND`` in its own process; ``stats()``/``clear()``/``bucket()`` talk to it over stdin."""

    def __init__(self, kind: str, root: str | None, log_dir: Path) -> None:
        self.kind = kind
        argv = [PYTHON, str(HERE / "server.py"), kind] + (["--root", root] if root else [])
        self._log = open(log_dir / f"server-{kind}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, env=base_env()
        )
        _live.add(self.proc)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            self.stop()
            raise RuntimeError(f"{kind} server did not start: see {self._log.name}")
        ready = json.loads(line)
        self.direct: str = ready["endpoint"]
        self._connection: dict[str, Any] = ready["connection"]
        if not self.direct.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"{kind} server is not on loopback: {self.direct}")
        self.endpoint = self.direct  # where clients go: the server, or the delay proxy in front of it
        self._proxy: DelayProxy | None = None
        self._log_dir = log_dir

    @property
    def connection(self) -> dict[str, Any]:
        """The Airflow connection for clients, pointing at :attr:`endpoint`."""
        text = json.dumps(self._connection).replace(
            self.direct.removeprefix("http://"), self.endpoint.removeprefix("http://")
        )
        out: dict[str, Any] = json.loads(text)
        return out

    def rtt(self, ms: float) -> None:
        """Clients reach the server through a round trip of ``ms`` milliseconds from now on (0: directly)."""
        if ms <= 0:
            self.endpoint = self.direct
            return
        if self._proxy is None:
            # moto (werkzeug) closes every connection; real S3 keeps them: the relay keeps the client's alive
            self._proxy = DelayProxy(self.direct, self._log_dir, http=self.kind == "s3")
        self._proxy.rtt(ms)
        self.endpoint = self._proxy.endpoint

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.kind} server exited: see {self._log.name}")
        out: dict[str, Any] = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"{self.kind} server: {out['error']}")
        return out

    def stats(self) -> dict[str, Any]:
        return self._ask("stats")

    def clear(self) -> None:
        self._ask("clear")

    def bucket(self, name: str) -> str:
        return str(self._ask(f"bucket {name}")["bucket"])

    def synthetic(self, name: str, **spec: Any) -> str:
        """A synthetic COS/OSS bucket (see testbed/multicloud_testbed/synthetic.py); its full name."""
        return str(self._ask(f"synthetic {name} {json.dumps(spec)}")["bucket"])

    def manifest(self, bucket: str) -> dict[str, Any]:
        """A complete manifest of the generated objects in that synthetic bucket, as a verified copy leaves."""
        return self._ask(f"manifest {bucket}")

    def latency(self, seconds: float, operation: str = "-") -> None:
        """Delay every request of ``operation`` by ``seconds`` (0: no faults at all)."""
        self._ask(f"latency {seconds} {operation}")

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def stop(self) -> None:
        if self._proxy is not None:
            self._proxy.stop()
        _stop(self.proc)
        self._log.close()


class DelayProxy:
    """``bench/delay_proxy.py`` in its own process, relaying to ``target`` with a round trip set by :meth:`rtt`."""

    def __init__(self, target: str, log_dir: Path, *, http: bool = False) -> None:
        self._log = open(log_dir / f"proxy-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [PYTHON, str(HERE / "delay_proxy.py"), target, *(["--http"] if http else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=base_env(),
        )
        _live.add(self.proc)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            self.stop()
            raise RuntimeError(f"delay proxy did not start: see {self._log.name}")
        self.endpoint: str = json.loads(line)["endpoint"]

    def rtt(self, ms: float) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"rtt {ms}\n")
        self.proc.stdin.flush()
        if "ok" not in json.loads(self.proc.stdout.readline() or "{}"):
            raise RuntimeError(f"delay proxy refused rtt {ms}: see {self._log.name}")

    def stop(self) -> None:
        _stop(self.proc)
        self._log.close()


@dataclass
class ChildResult:
    returncode: int
    stdout: str
    stderr: str
    maxrss_mib: float  # the child's own peak RSS, from wait4
    wall_s: float
    cpu_s: float = 0.0  # the child's user + system CPU seconds, from the same wait4

    def json(self) -> dict[str, Any]:
        """The last JSON document the child printed on stdout (one line, or the whole output)."""
        lines = self.stdout.strip().splitlines()
        for i, line in enumerate(lines):
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    out: dict[str, Any] = json.loads("\n".join(lines[i:]))
                    return out
        raise RuntimeError(f"no JSON in the output of a child: {self.stdout[-2000:]!r}")


def run_child(argv: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> ChildResult:
    """Run a measured child to completion; its peak RSS comes from ``wait4`` (this child only)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env or measured_env(), cwd=REPO)
        _live.add(proc)
        deadline = start + timeout
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{argv[:3]} ran over {timeout} s")
                time.sleep(0.02)
        except BaseException:
            _stop(proc)
            raise
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        _live.discard(proc)
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        result = ChildResult(proc.returncode, out.read(), err.read(), usage.ru_maxrss / 1024, wall, cpu)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {result.returncode}:\n{tail}")
    return result
