"""Airflow connections read from ``AIRFLOW_CONN_*`` variables without importing Airflow (the CLI's start-up path).

Outside a task, Airflow 3 looks a connection up in a configured secrets backend first, then in the environment;
it never reads the metadata database there. So when no secrets backend is configured, the environment is the
whole truth and a command can read it as Airflow would (same JSON and URI forms), saving Airflow's import (over a
second). Everything else - a configured backend, a task, an operator - goes through Airflow.
"""

from __future__ import annotations

import configparser
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

_PREFIX = "AIRFLOW_CONN_"
_EXTRA_KEY = "__extra__"


@dataclass(frozen=True)
class EnvConnection:
    """The fields of one connection, as Airflow's ``Connection`` names them; ``repr`` hides the secret."""

    conn_id: str
    conn_type: str = ""
    host: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    port: int | None = None
    extra_dejson: dict[str, Any] = field(default_factory=dict, repr=False)


def secrets_backend_configured() -> bool:
    """True when Airflow could find connections somewhere other than the environment (so it must be asked)."""
    if os.environ.get("_AIRFLOW_PROCESS_CONTEXT") == "server":
        return True
    names = (("secrets", "backend"), ("workers", "secrets_backend"))
    for section, key in names:
        for suffix in ("", "_CMD", "_SECRET"):
            if os.environ.get(f"AIRFLOW__{section.upper()}__{key.upper()}{suffix}", "").strip():
                return True
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow").expanduser()
    cfg = Path(os.environ.get("AIRFLOW_CONFIG") or home / "airflow.cfg").expanduser()
    if not cfg.is_file():
        return False
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(cfg, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return True  # a config we cannot read: let Airflow read it (and report on it)
    return any(
        parser.get(section, key + suffix, fallback="").strip()
        for section, key in names
        for suffix in ("", "_cmd", "_secret")
    )


def from_environment(conn_id: str) -> EnvConnection | None:
    """The connection ``AIRFLOW_CONN_<ID>`` defines (JSON or URI, as Airflow parses them), or None.

    Errors name the variable, never its value (it holds a secret).
    """
    name = _PREFIX + conn_id.upper()
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return _from_json(conn_id, value) if value.lstrip().startswith("{") else _from_uri(conn_id, value)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(
            f"{name} is not a connection Airflow can read: use a JSON object with a conn_type, or a URI "
            "(type://login:password@host?key=value)"
        ) from None


def _extra(value: Any) -> dict[str, Any]:
    parsed = json.loads(value) if isinstance(value, str) else value
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise ValueError("extra is not an object")
    return parsed


def _conn_type(text: str) -> str:
    return "postgres" if text == "postgresql" else text.replace("-", "_")


def _from_json(conn_id: str, value: str) -> EnvConnection:
    doc = json.loads(value)
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    port = doc.get("port")
    return EnvConnection(
        conn_id,
        conn_type=_conn_type(str(doc.get("conn_type") or "")),
        host=doc.get("host"),
        login=doc.get("login"),
        password=doc.get("password"),
        schema=doc.get("schema"),
        port=int(port) if port else None,
        extra_dejson=_extra(doc.get("extra")),
    )


def _from_uri(conn_id: str, uri: str) -> EnvConnection:
    """Airflow's ``Connection.from_uri``: ``type://login:password@host:port/schema?extra``; a host may carry its
    own protocol (``type://https://host``)."""
    if uri.count("://") > 2 or "://" not in uri:
        raise ValueError("not a connection URI")
    with_protocol = uri.count("://") == 2
    conn_type = urlsplit(uri).scheme
    rest = uri.replace(f"{conn_type}://", "" if with_protocol else "//")
    if with_protocol and ("@" in rest.split("://", 1)[0] or ":" in rest.split("://", 1)[0]):
        raise ValueError("credentials before the host's protocol")
    parts = urlsplit(rest)
    host = unquote(parts.hostname or "")
    if "/" in host:  # Airflow's _parse_netloc_to_hostname: a quoted path in the host is kept whole
        host = unquote(parts.netloc.rsplit("@", 1)[-1].split(":", 1)[0])
    if host and with_protocol:
        host = f"{parts.scheme}://{host}"
    extra: dict[str, Any] = {}
    if parts.query:
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        extra = _extra(query[_EXTRA_KEY]) if _EXTRA_KEY in query else query
    return EnvConnection(
        conn_id,
        conn_type=_conn_type(conn_type),
        host=host or None,
        login=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        schema=unquote(parts.path[1:]) if parts.path[1:] else None,
        port=parts.port,
        extra_dejson=extra,
    )
