"""``AirflowStack.rest`` sends a request again when the API answers 503 "Database is locked" (SQLite), and only then.

A real Airflow on SQLite gives that answer only when another component happens to hold the write lock (it broke
``make demo`` once, on the backfill POST), so it cannot be provoked on demand. A small HTTP server in this process
stands in for the API here and answers with Airflow's own status and message; everything else is the real code.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from multicloud_testbed.airflow_stack import AirflowStack, AirflowStackError

LOCKED = {"detail": "Database is locked. Backfill creation is not supported on SQLite under concurrent access."}


class FakeApi:
    """Answers the first ``fail`` requests with ``status``/``body``, then 200 with what was posted."""

    def __init__(self, fail: int, status: int = 503, body: dict[str, Any] | None = None) -> None:
        self.fail, self.status, self.body = fail, status, body or LOCKED
        self.seen: list[tuple[str, str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                posted = json.loads(self.rfile.read(length)) if length else None
                api.seen.append((self.path, self.headers.get("Authorization", ""), posted))
                status, answer = (api.status, api.body) if len(api.seen) <= api.fail else (200, {"got": posted})
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def api_and_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[FakeApi, AirflowStack]]:
    api = FakeApi(*request.param)
    stack = AirflowStack(tmp_path / "home", tmp_path / "dags", port=api.port)
    stack._token = "test-token"  # what POST /auth/token would have given
    try:
        yield api, stack
    finally:
        api.server.shutdown()
        api.server.server_close()


@pytest.mark.parametrize("api_and_stack", [(3,)], indirect=True)
def test_a_locked_database_is_waited_out(api_and_stack: tuple[FakeApi, AirflowStack]) -> None:
    api, stack = api_and_stack
    body = {"dag_id": "d", "max_active_runs": 3}
    assert stack.rest("POST", "/api/v2/backfills", body) == {"got": body}
    assert api.seen == [("/api/v2/backfills", "Bearer test-token", body)] * 4


@pytest.mark.parametrize("api_and_stack", [(50,)], indirect=True)
def test_a_lock_that_never_clears_raises_with_airflows_message(api_and_stack: tuple[FakeApi, AirflowStack]) -> None:
    api, stack = api_and_stack
    with pytest.raises(AirflowStackError, match=r"POST /api/v2/backfills -> 503: .*Database is locked"):
        stack.rest("POST", "/api/v2/backfills", {}, busy_retries=2)
    assert len(api.seen) == 3


@pytest.mark.parametrize(
    "api_and_stack", [(1, 503, {"detail": "Service unavailable"}), (1, 409, LOCKED)], indirect=True
)
def test_other_errors_are_not_sent_again(api_and_stack: tuple[FakeApi, AirflowStack]) -> None:
    api, stack = api_and_stack
    with pytest.raises(AirflowStackError, match=f"-> {api.status}: "):
        stack.rest("POST", "/api/v2/backfills", {"dag_id": "d"})
    assert len(api.seen) == 1
