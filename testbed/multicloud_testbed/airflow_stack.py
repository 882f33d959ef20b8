"""A real Airflow 3.3 on this machine: api-server, dag-processor, scheduler and triggerer as subprocesses.

Used by the end-to-end tests and by ``multicloud airflow-local``. Choices, and why:

- every component leads its own process group, so stopping a group also stops what it spawned (task
  supervisors, the trigger runner, API workers), and a Ctrl-C in the terminal reaches only the parent, which
  then stops them in order;
- everything listens on 127.0.0.1 only: the API server gets ``--host 127.0.0.1``, and the scheduler's and
  triggerer's log servers (hard-coded to 0.0.0.0) are switched off with ``--skip-serve-logs`` (the API server
  reads task logs from local files anyway). The dag-processor has no log server and no such flag;
- all processes share one JWT secret, fernet key and Execution API URL, or workers cannot talk to the API;
- LocalExecutor with a small parallelism: this is a 2-core machine;
- the metadata DB is a SQLite file in the home, or a fresh PostgreSQL database dropped again on stop;
- or, with ``executor="CeleryExecutor"`` (PostgreSQL only), ``airflow celery worker`` processes run the tasks:
  the broker is the local Redis, every key and pub/sub channel of this stack under a prefix of its own (kombu's
  ``global_keyprefix``) that ``stop()`` deletes, so parallel stacks never take each other's tasks; the Celery
  result backend is the stack's own PostgreSQL database (``db+postgresql://``), dropped with it. Each worker
  has its own ``--celery-hostname`` (``worker1@<host>`` ...), concurrency 1 and prefetch 1, and reports that
  same name as the task instances' ``hostname`` (``[core] hostname_callable``), as separate machines would.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

import psutil

T = TypeVar("T")
DbKind = Literal["sqlite", "postgres"]
Executor = Literal["LocalExecutor", "CeleryExecutor"]
COMPONENTS = ("api-server", "dag-processor", "scheduler", "triggerer")
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
REDIS_URL = "redis://127.0.0.1:6379/0"
WORKER_HOSTNAME_ENV = "MULTICLOUD_WORKER_HOSTNAME"
ADMIN_USER = "admin"  # the simple auth manager's default user (``simple_auth_manager_users = admin:admin``)


class AirflowStackError(RuntimeError):
    """A component died, a wait timed out, or processes outlived ``stop()``; the message carries the logs."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_problem(dsn: str = PG_DSN) -> str | None:
    """Why no database can be created on the local PostgreSQL, or None when it can."""
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 is not installed (pip install psycopg2-binary)"
    try:  # Airflow 3.3 also opens an async engine on the metadata DB: postgresql -> asyncpg
        import asyncpg  # noqa: F401
    except ImportError:
        return "asyncpg is not installed (pip install asyncpg): Airflow's async engine needs it for PostgreSQL"
    try:
        psycopg2.connect(dsn).close()
    except psycopg2.Error as exc:
        return f"cannot connect to PostgreSQL ({dsn}): {str(exc).strip()}"
    return None


def celery_problem(broker_url: str = REDIS_URL) -> str | None:
    """Why no Celery worker can run here (provider, redis client or Redis server missing), or None when it can."""
    if importlib.util.find_spec("airflow.providers.celery") is None:
        return "the Celery provider is not installed (pip install apache-airflow-providers-celery)"
    try:
        import redis
    except ImportError:
        return "the redis client is not installed (pip install 'celery[redis]')"
    try:
        client = redis.Redis.from_url(broker_url, socket_connect_timeout=3, socket_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        return f"cannot reach Redis ({broker_url}): {exc}"
    return None


def celery_worker_hostname() -> str:
    """``[core] hostname_callable`` of a stack's Celery workers: the worker's own ``--celery-hostname``.

    All workers of a stack run on this one machine, where the default (the FQDN) would be the same for every
    task instance; with this each task instance records which worker ran it, as on separate machines.
    """
    return os.environ.get(WORKER_HOSTNAME_ENV) or socket.getfqdn()


class PostgresDatabase:
    """A database of its own on the local PostgreSQL, so parallel stacks and earlier runs never collide."""

    def __init__(self, dsn: str = PG_DSN, name: str | None = None) -> None:
        self.dsn = dsn
        self.name = name or f"airflow_stack_{uuid.uuid4().hex[:12]}"
        params = dict(part.split("=", 1) for part in dsn.split())
        self.url = (
            f"postgresql+psycopg2://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
            f"{params.get('port', '5432')}/{self.name}"
        )

    def _execute(self, sql: str) -> None:
        import psycopg2

        con = psycopg2.connect(self.dsn)
        con.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
        try:
            with con.cursor() as cur:
                cur.execute(sql)
        finally:
            con.close()

    def create(self) -> PostgresDatabase:
        self._execute(f'CREATE DATABASE "{self.name}"')
        return self

    def drop(self) -> None:
        # FORCE: a killed component may leave a backend behind for a moment, which would block a plain DROP
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class AirflowStack:
    """Airflow's components as subprocesses of this process, with REST helpers.

    ``with AirflowStack(home, dags).start() as stack: ...`` or call ``stop()`` in a ``finally``. ``env`` is
    the environment of every component (add ``AIRFLOW_CONN_*`` and DAG settings through ``extra_env``); the
    parent's own ``AIRFLOW*`` variables are not passed on (a test session's unit-test mode must not leak in).
    """

    def __init__(
        self,
        home: Path | str,
        dags_folder: Path | str,
        *,
        db: DbKind = "sqlite",
        port: int = 0,
        parallelism: int = 4,
        unpause_all: bool = False,
        extra_env: Mapping[str, str] | None = None,
        components: Sequence[str] = COMPONENTS,
        secrets_file: Path | str | None = None,
        executor: Executor = "LocalExecutor",
        celery_workers: int = 2,
        broker_url: str = REDIS_URL,
    ) -> None:
        """``celery_workers`` and ``broker_url`` (a Redis URL) count only with ``executor="CeleryExecutor"``."""
        from cryptography.fernet import Fernet

        if executor == "CeleryExecutor" and db != "postgres":
            raise ValueError("CeleryExecutor needs db='postgres': the Celery result backend is the stack's database")
        self.home = Path(home).resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.components = tuple(components)
        self.pg = PostgresDatabase() if db == "postgres" else None
        db_url = self.pg.url if self.pg else f"sqlite:///{self.home / 'airflow.db'}"
        # a persistent home needs the same fernet key and JWT secret on every start: keep them in a 0600 file
        keys = _load_or_create_secrets(
            Path(secrets_file) if secrets_file else None,
            lambda: {
                "fernet_key": Fernet.generate_key().decode(),
                "jwt_secret": secrets.token_hex(32),
                "api_secret_key": secrets.token_hex(16),
            },
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        self.env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(Path(dags_folder).resolve()),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM=str(parallelism),
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=str(not unpause_all),
            AIRFLOW__CORE__FERNET_KEY=keys["fernet_key"],
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=db_url,
            # every process must sign and check the workers' Execution API tokens with the same secret
            AIRFLOW__API_AUTH__JWT_SECRET=keys["jwt_secret"],
            AIRFLOW__API__SECRET_KEY=keys["api_secret_key"],
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__WORKERS="1",  # every uvicorn worker is a full Airflow process: one is plenty on 2 cores
            AIRFLOW__API__BASE_URL=self.url,
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",  # its server would bind 0.0.0.0:8974
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
            AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="1",
        )
        self.executor = executor
        self.broker_url = broker_url
        self.redis_prefix = ""
        self.workers: dict[str, str] = {}  # component name -> celery hostname
        if executor == "CeleryExecutor":
            assert self.pg is not None
            self.redis_prefix = f"airflow_stack_{uuid.uuid4().hex[:12]}:"
            self.workers = {f"worker{i}": f"worker{i}@{socket.gethostname()}" for i in range(1, celery_workers + 1)}
            self.env.update(self._celery_env(self.pg.url))
        self.env.update(extra_env or {})
        self.airflow = str(Path(sys.executable).with_name("airflow"))
        self.procs: dict[str, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}
        self._log_offsets: dict[str, int] = {}  # where each component's log began at its last start (logs append)
        self._token: str | None = None
        self._db_created = self._migrated = False

    def _celery_env(self, db_url: str) -> dict[str, str]:
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            # every key and channel kombu uses (queues, unacked, bindings, pidbox) starts with this prefix
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": self.redis_prefix,
            # a task still unacknowledged after this long is delivered again; the default (1 day) warns on start
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db_url}",
            # one task at a time per worker, and no task reserved while one runs: queued tasks go to idle workers
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__CELERY__TASK_ACKS_LATE": "True",
        }

    # ---- lifecycle --------------------------------------------------------------------------------------------
    def migrate(self, timeout: float = 180) -> None:
        """Create the DB (PostgreSQL) and migrate it; call it yourself to run ``cli`` commands before ``start``."""
        if self.pg and not self._db_created:
            self.pg.create()
            self._db_created = True
        self.cli("db", "migrate", timeout=timeout)
        self._migrated = True

    def start(self) -> AirflowStack:
        """Migrate (unless done) and start the components; returns at once (see ``wait_healthy``)."""
        if not self._migrated:
            self.migrate()
        args = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            "dag-processor": ["dag-processor"],
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "triggerer": ["triggerer", "--skip-serve-logs"],
        }
        for name in self.components:
            self.start_component(name, *args[name])
        for name in self.workers:
            self.start_celery_worker(name)
        return self

    def start_celery_worker(self, name: str) -> None:
        """Start one ``airflow celery worker`` (``name`` from ``self.workers``); see ``wait_workers_ready``."""
        hostname = self.workers[name]
        args = ["celery", "worker", "--celery-hostname", hostname, "--concurrency", "1", "--skip-serve-logs"]
        # no gossip or mingle: nothing here needs workers to know each other, and they save broker traffic
        args += ["--without-gossip", "--without-mingle"]
        env = {"AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.celery_worker_hostname", WORKER_HOSTNAME_ENV: hostname}
        self.start_component(name, *args, env=env)

    def __enter__(self) -> AirflowStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def cli(self, *args: str, timeout: float = 60) -> str:
        """Run one ``airflow`` command with the stack's environment; its output, or an error with it."""
        done = subprocess.run(
            [self.airflow, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,  # a Ctrl-C in the terminal is for the parent, which cleans up
        )
        if done.returncode != 0:
            raise AirflowStackError(f"airflow {args[0]} ... failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start_component(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> None:
        """Start ``airflow *args`` as component ``name`` (log ``<home>/<name>.log``), ``env`` added to the stack's."""
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._log_offsets[name] = log.tell()
        proc = subprocess.Popen(
            [self.airflow, *args],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = (proc, log)

    def log(self, name: str, since_start: bool = False) -> str:
        """A component's log; with ``since_start`` only what its last start wrote (a persistent home keeps logs)."""
        path = self.home / f"{name}.log"
        if not path.exists():
            return ""
        with path.open("rb") as f:
            f.seek(self._log_offsets.get(name, 0) if since_start else 0)
            return f.read().decode(errors="replace")

    def logs_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {n}.log\n{self.log(n)[-chars:]}" for n in self.procs)

    def stop(self, grace: float = 15) -> None:
        """SIGTERM every process group, SIGKILL what is left after ``grace`` seconds, delete the stack's Redis keys,
        drop the PostgreSQL DB.

        Raises AirflowStackError if any process of the stack is still alive afterwards.
        """
        for proc, _ in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc, _ in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc, log in self.procs.values():
            # children may outlive their group leader: kill the whole group, whatever the leader did
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            log.close()
        left = _wait_groups_gone([proc.pid for proc, _ in self.procs.values()], timeout=5)
        self.procs.clear()
        if self.redis_prefix:  # the broker keys of this stack, whatever state the workers left them in
            self.delete_redis_keys()
        if self.pg and self._db_created:
            self.pg.drop()
            self._db_created = False
        if left:
            raise AirflowStackError(f"processes still alive after stop: {left}")

    def redis_keys(self) -> list[str]:
        """The broker keys of this stack (queues, unacked messages, bindings) now in Redis."""
        if not self.redis_prefix:  # not a Celery stack: no keys of its own
            return []
        import redis

        client = redis.Redis.from_url(self.broker_url)
        try:
            return sorted(k.decode() for k in client.scan_iter(match=f"{self.redis_prefix}*", count=500))
        finally:
            client.close()

    def delete_redis_keys(self) -> None:
        import redis

        keys = self.redis_keys()
        if keys:
            client = redis.Redis.from_url(self.broker_url)
            try:
                client.delete(*keys)
            finally:
                client.close()

    # ---- waiting ----------------------------------------------------------------------------------------------
    def check_alive(self, what: str) -> None:
        for name, (proc, _) in self.procs.items():
            if proc.poll() is not None:
                msg = f"{name} exited ({proc.returncode}) while waiting for {what}:\n{self.log(name)}"
                raise AirflowStackError(msg)

    def wait_for(self, what: str, probe: Callable[[], T], timeout: float, interval: float = 0.5) -> T:
        """Call ``probe`` until it returns something truthy; fail early if a component dies."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            self.check_alive(what)
            if time.monotonic() > deadline:
                raise AirflowStackError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs_tail()}")
            time.sleep(interval)

    def health(self) -> dict[str, Any]:
        """``GET /api/v2/monitor/health`` (no auth), or {} while the API server is not answering."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as resp:
                return dict(json.load(resp))
        except (OSError, ValueError):
            return {}

    def wait_healthy(self, timeout: float = 120) -> dict[str, Any]:
        """Wait until the DB and every started component report healthy."""
        keys = {"scheduler": "scheduler", "triggerer": "triggerer", "dag-processor": "dag_processor"}
        wanted = ["metadatabase"] + [keys[c] for c in self.components if c in keys]

        def healthy() -> dict[str, Any]:
            h = self.health()
            ok = all((h.get(k) or {}).get("status") == "healthy" for k in wanted)
            return h if ok else {}

        return self.wait_for("all components to report healthy", healthy, timeout)

    def wait_workers_ready(self, timeout: float = 120) -> None:
        """Wait until every Celery worker has connected to the broker and consumes (its log says ``ready.``)."""
        self.wait_for(
            f"Celery workers {sorted(self.workers)} to be ready",
            lambda: all(f"{host} ready." in self.log(name, since_start=True) for name, host in self.workers.items()),
            timeout,
        )

    # ---- REST -------------------------------------------------------------------------------------------------
    def admin_password(self, timeout: float = 60) -> str:
        """The admin password the simple auth manager generated (written when the API server starts)."""
        path = self.home / "simple_auth_manager_passwords.json.generated"
        self.wait_for(f"{path.name}", path.exists, timeout)
        return str(json.loads(path.read_text())[ADMIN_USER])

    def token(self) -> str:
        """A bearer token for the admin user from ``POST /auth/token`` (cached)."""
        if self._token is None:
            body = {"username": ADMIN_USER, "password": self.admin_password()}
            self._token = str(self._request("POST", "/auth/token", body, token=None)["access_token"])
        return self._token

    def rest(self, method: str, path: str, json: Any = None, busy_retries: int = 10) -> Any:
        """Call the public REST API as admin (``path`` like ``/api/v2/dags``); the decoded JSON answer.

        On SQLite the API answers 503 "Database is locked" while another component writes (backfill creation
        does so on purpose); nothing was changed then, so the call is made again, up to ``busy_retries`` times.
        """
        for attempt in range(busy_retries + 1):
            try:
                return self._request(method, path, json, token=self.token())
            except AirflowStackError as exc:
                if attempt == busy_retries or not _database_busy(str(exc)):
                    raise
                time.sleep(min(0.5 * 2**attempt, 5.0))
        raise AssertionError("unreachable")

    def _request(self, method: str, path: str, body: Any, token: str | None) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:2000]
            raise AirflowStackError(f"{method} {path} -> {exc.code}: {detail}") from None
        return json.loads(raw) if raw else None

    def wait_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id`` and the API knows it."""

        def parsed() -> dict[str, Any]:
            try:
                return dict(self.rest("GET", f"/api/v2/dags/{dag_id}"))
            except AirflowStackError as exc:
                if "-> 404" in str(exc):
                    return {}
                raise

        return self.wait_for(f"DAG {dag_id} to be parsed", parsed, timeout)

    def unpause(self, dag_id: str, timeout: float = 120) -> None:
        """Unpause one DAG once it is parsed (the other DAGs of the folder stay paused)."""
        self.wait_dag(dag_id, timeout)
        self.rest("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})


def _database_busy(message: str) -> bool:
    """An API error saying the SQLite metadata DB was locked: the request changed nothing and may be sent again."""
    return " -> 503: " in message and "database is locked" in message.lower()


def _load_or_create_secrets(path: Path | None, make: Callable[[], dict[str, str]]) -> dict[str, str]:
    if path is None:
        return make()
    if path.exists():
        return dict(json.loads(path.read_text()))
    values = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f)
    return values


def _group_members(pgids: Sequence[int]) -> list[int]:
    """Live (non-zombie) processes in any of these process groups."""
    found = []
    for p in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if p.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) in pgids:
                found.append(p.pid)
    return found


def _wait_groups_gone(pgids: Sequence[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        left = _group_members(pgids)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)
