"""What ``multicloud`` writes to stderr: log records in one format, and the progress (a live bar on a terminal,
plain periodic lines otherwise). Quiet by default: warnings and errors only; ``-v`` adds the run's own steps,
``-vv`` debug lines and the libraries' info."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from airflow_multicloud.replication.progress import Snapshot

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: seconds between redraws of the bar on a terminal
BAR_REFRESH = 0.25
_BAR_WIDTH = 24
_LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3", "oss2", "qcloud_cos", "requests", "werkzeug", "moto")
# Airflow's secrets masker warns about every short extra value ("v4", "http") it is handed, secret or not
_SILENCED = ("airflow.sdk._shared.secrets_masker.secrets_masker", "airflow.task.secrets_masker")


class Console:
    """stderr, shared by the log handler and the progress so that a log line never lands inside the bar."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.lock = threading.RLock()
        self._bar = False

    def write_line(self, text: str) -> None:
        with self.lock:
            self._clear()
            self.stream.write(text + "\n")
            self.stream.flush()

    def _clear(self) -> None:
        if self._bar:
            self.stream.write("\r\x1b[K")
            self._bar = False

    def show(self, snap: Snapshot, final: bool) -> None:
        """The engine's progress display: a bar redrawn in place (cleared at the end, the summary follows) on a
        terminal, else a plain line per interval."""
        with self.lock:
            if not self.tty:
                if not final:
                    self.stream.write(f"progress: {snap.line()}\n")
            elif final:
                self._clear()
            else:
                filled = round(snap.fraction * _BAR_WIDTH)
                bar = "#" * filled + "." * (_BAR_WIDTH - filled)
                self.stream.write(f"\r[{bar}] {snap.fraction:4.0%} {snap.line()}\x1b[K")
                self._bar = True
            self.stream.flush()


class _Handler(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.write_line(self.format(record))
        except Exception:
            self.handleError(record)


def configure_logging(verbosity: int, console: Console) -> None:
    """One handler, one format, for every logger (Airflow's too, should a connection need Airflow: call again
    after it was imported, since its import installs its own handlers)."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(max(verbosity, -1), logging.DEBUG)
    handler = _Handler(console)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO if verbosity >= 2 else max(logging.WARNING, level))
    for name in _SILENCED:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "airflow" in sys.modules:
        _structlog_through_logging()
    for name in ("airflow", "airflow.task", "airflow.processor", "py.warnings"):
        # Airflow's own logging config sends these elsewhere and stops them at their handlers
        log = logging.getLogger(name)
        log.handlers[:] = []
        log.propagate = True


def _message(logger: Any, method: str, event: MutableMapping[str, Any]) -> tuple[Any, ...]:
    return (str(event.get("event", "")),), {}


def _structlog_through_logging() -> None:
    """Airflow 3 logs through structlog, which writes its own format to the stream itself: send its events to the
    standard logging loggers instead, where the handler above formats them like every other line."""
    import structlog

    structlog.configure(
        processors=[structlog.stdlib.PositionalArgumentsFormatter(), _message],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
