"""The connection form's Test button for COS and OSS: ``test_connection`` signs one ListBuckets call with the
connection's keys against the local servers, which verify signatures as the clouds do; Airflow's own
``Connection.test_connection`` (what the API's test endpoint calls) finds our hooks through the provider."""

from __future__ import annotations

from typing import Any

import pytest

from multicloud_testbed.services import SECRET_KEY

WRONG_SECRET = "wrong-secret-0123456789abcdef"


def _connection(service: Any, conn_id: str, **changes: Any) -> Any:
    from airflow.models.connection import Connection

    fields = service.connection(conn_id)
    extra = {**fields.pop("extra"), **changes.pop("extra", {})}
    fields.pop("description", None)
    return Connection(conn_id=conn_id, extra=extra, **{**fields, **changes})


def _test(service: Any, **changes: Any) -> tuple[bool, str]:
    """What the API server does for the Test button: build the connection from the form, export it as a transient
    environment connection, test it."""
    import os

    conn = _connection(service, "form_test", **changes)
    os.environ["AIRFLOW_CONN_FORM_TEST"] = conn.as_json()
    try:
        status, message = conn.test_connection()
    finally:
        del os.environ["AIRFLOW_CONN_FORM_TEST"]
    return bool(status), str(message)


@pytest.mark.parametrize("name", ["cos", "oss"])
def test_the_right_keys_pass(clean_services: dict[str, Any], name: str) -> None:
    service = clean_services[name]
    ok, message = _test(service)
    assert ok, message
    assert "accepted" in message
    assert [r for r in service.requests if r.operation == "ListBuckets"], "one signed ListBuckets went out"


@pytest.mark.parametrize("name", ["cos", "oss"])
def test_a_wrong_secret_fails_clearly_and_never_shows_a_secret(clean_services: dict[str, Any], name: str) -> None:
    ok, message = _test(clean_services[name], password=WRONG_SECRET)
    assert not ok
    assert "SignatureDoesNotMatch" in message and "form_test" not in message, "the form tests under a random id"
    assert "does not match" in message and "password" in message
    assert WRONG_SECRET not in message and SECRET_KEY not in message


def test_oss_signature_v1_is_tested_too(clean_services: dict[str, Any]) -> None:
    oss = clean_services["oss"]
    assert _test(oss, extra={"auth_version": "v1"})[0]
    ok, message = _test(oss, extra={"auth_version": "v1"}, password=WRONG_SECRET)
    assert not ok and "SignatureDoesNotMatch" in message


@pytest.mark.parametrize(
    ("name", "changes", "expected"),
    [
        ("cos", {"extra": {"region": None}}, "the connection has no region"),
        ("cos", {"password": None}, "the connection has no password: set it to the COS SecretKey"),
        ("oss", {"extra": {"auth_version": "v3"}}, 'the connection: extra "auth_version" must be v4 or v1'),
        ("oss", {"login": None}, "the connection has no AccessKey ID"),
    ],
)
def test_an_incomplete_form_names_the_missing_field(
    clean_services: dict[str, Any], name: str, changes: dict[str, Any], expected: str
) -> None:
    service = clean_services[name]
    service.clear_log()
    ok, message = _test(service, **changes)
    assert not ok and expected in message
    assert service.requests == [], "nothing is sent before the form is complete"


@pytest.mark.parametrize("name", ["cos", "oss"])
def test_an_unreachable_endpoint_fails_with_the_address(clean_services: dict[str, Any], name: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = f"http://127.0.0.1:{port}"
    ok, message = _test(clean_services[name], extra={"endpoint": dead})
    assert not ok and "could not reach" in message
    assert SECRET_KEY not in message
