"""``multicloud``'s surface without any server: --version, choices, exit codes in --help, --json on input errors,
plain progress lines when stderr is not a terminal, and what the command line imports (not Airflow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from airflow_multicloud.cli.main import main as cli
from airflow_multicloud.cli.outcome import Outcome
from airflow_multicloud.hooks.env_connections import EnvConnection, from_environment, secrets_backend_configured

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_the_command_line_module_and_help_import_no_airflow() -> None:
    code = (
        "import sys\n"
        "import airflow_multicloud.cli.main as m\n"
        "assert 'airflow' not in sys.modules, 'importing the CLI imported airflow'\n"
        "for argv in (['--help'], ['replicate', '--help'], ['verify', '--help'], ['--version']):\n"
        "    try:\n"
        "        m.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(n for n in ('airflow', 'boto3', 'botocore', 'oss2', 'qcloud_cos') if n in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HEAVY []" in out.stdout


def test_importing_the_package_and_its_operators_for_dag_parsing_imports_no_sdk() -> None:
    out = _python(
        "import sys, airflow_multicloud\n"
        "import airflow_multicloud.operators.replicate, airflow_multicloud.operators.validate\n"
        "import airflow_multicloud.sensors.partition\n"
        "heavy = ('boto3', 'botocore', 'oss2', 'qcloud_cos', 'pandas', 'great_expectations', 'moto')\n"
        "print('HEAVY', sorted(n for n in heavy if n in sys.modules))"
    )
    assert "HEAVY []" in out.stdout, out.stderr[-2000:]


def test_version_names_the_installed_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli(["--version"])
    assert info.value.code == 0
    assert version("airflow-multicloud") in capsys.readouterr().out


def test_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["replicate", "--help"], ["verify", "--help"]):
        with pytest.raises(SystemExit):
            cli(argv)
        text = capsys.readouterr().out
        for outcome in Outcome:
            assert f"{outcome.value}  {outcome.meaning}" in text, (argv, outcome)


@pytest.mark.parametrize(
    ("flag", "value", "choices"),
    [
        ("--mode", "sync", "'copy', 'mirror'"),
        ("--overwrite", "always", "'if_changed', 'never'"),
        ("--retention-mode", "legal", "'GOVERNANCE', 'COMPLIANCE'"),
        ("--source-verification", "lax", "'auto', 'strict'"),
    ],
)
def test_enumerations_are_choices_with_json_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, choices: str
) -> None:
    argv = ["replicate", f"file://{tmp_path}/src/", f"file://{tmp_path}/dst/", flag, value, "--json"]
    assert cli(argv) == 2
    out = capsys.readouterr()
    assert f"argument {flag}: invalid choice" in out.err and choices in out.err
    doc = json.loads(out.out)
    assert (doc["exit_code"], doc["outcome"]) == (2, "bad_input")
    assert f"argument {flag}: invalid choice" in doc["error"]
    assert not (tmp_path / "dst").exists()


def test_choices_accept_any_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_bytes(b"a\n")
    argv = ["replicate", f"file://{src}/", f"file://{tmp_path}/dst/", "--mode", "COPY", "--overwrite", "Never"]
    assert cli([*argv, "--json", "--progress-interval", "0"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["copied"] == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["replicate", "gs://bucket/x/", "file:///tmp/nowhere/"],
        ["replicate", "s3://bucket/x/", "cos://b-1250000000/y/", "--src-conn", "no_such_conn_here"],
        ["replicate", "--workers"],
        ["verify", "gs://bucket/x/", "file:///tmp/nowhere/"],
        ["verify"],
    ],
)
def test_json_reports_input_errors_on_stdout(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli([*argv, "--json"]) == 2
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["exit_code"] == 2 and doc["outcome"] == "bad_input" and doc["error"]


def test_empty_source_names_the_flag_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src").mkdir()
    argv = ["replicate", f"file://{tmp_path}/src/", f"file://{tmp_path}/dst/", "--progress-interval", "0"]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert "holds no objects" in err and "--allow-empty" in err and "allow_empty=True" not in err
    assert cli([*argv, "--allow-empty"]) == 0


def test_progress_is_plain_periodic_lines_counting_inside_an_object_when_not_a_terminal(tmp_path: Path) -> None:
    """A 12 MiB object in 5 MiB parts read at 8 MiB/s: lines every 0.2 s, bytes counted before the object ends."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(12 * 1024 * 1024))
    argv = [f"file://{src}/", f"file://{tmp_path}/dst/", "--threshold", "5MiB", "--part-size", "5MiB"]
    argv += ["--bandwidth", "8MiB", "--progress-interval", "0.2"]
    run = subprocess.run(
        [sys.executable, "-m", "airflow_multicloud.cli.main", "replicate", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stderr.splitlines()
    progress = [line for line in lines if line.startswith("progress: ")]
    assert len(progress) >= 2, run.stderr
    assert "\r" not in run.stderr and "\x1b" not in run.stderr, "no terminal control codes when not a terminal"
    inside = [
        line
        for line in progress
        if line.startswith("progress: 0/1 objects") and not line.startswith("progress: 0/1 objects, 0.0 MB")
    ]
    assert inside, f"no line counted bytes of the object while it streamed: {progress}"
    assert len(lines) == len(progress), f"quiet by default, only progress lines: {lines}"
    # one throughput: the summary's MB/s is bytes written over the run's seconds, as the progress lines count it
    summary = run.stdout.splitlines()[0]
    assert "(12.6 MB written)" in summary and "MB/s)" in summary


@pytest.mark.parametrize(
    "value",
    [
        '{"conn_type": "cos", "login": "AKID", "password": "p@ss/word", "extra": {"region": "ap-guangzhou"}}',
        '{"conn_type": "aws", "extra": "{\\"endpoint_url\\": \\"http://127.0.0.1:9000\\"}", "port": "9000"}',
        "aws://AKID:se%2Fcret@/?region_name=eu-west-1&endpoint_url=http%3A%2F%2F127.0.0.1%3A9000",
        "multicloud-oss://id:secret@oss-cn-hangzhou.aliyuncs.com:443/schema?auth_version=v1",
        "cos://id:secret@?__extra__=%7B%22region%22%3A+%22ap-beijing%22%2C+%22scheme%22%3A+%22http%22%7D",
        "aws://https%3A%2F%2Fhost.example%2Fpath",
        "aws://https://host.example:8443/db",
    ],
)
def test_environment_connections_parse_as_airflow_parses_them(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from airflow.sdk.definitions.connection import Connection

    monkeypatch.setenv("AIRFLOW_CONN_PARSED", value)
    ours = from_environment("parsed")
    assert isinstance(ours, EnvConnection)
    theirs = Connection.from_json(value, "parsed") if value.startswith("{") else Connection.from_uri(value, "parsed")
    fields = ("conn_type", "host", "login", "password", "schema", "port")
    assert {f: getattr(ours, f) or None for f in fields} == {f: getattr(theirs, f) or None for f in fields}
    assert ours.extra_dejson == theirs.extra_dejson


@pytest.mark.parametrize(
    "value", ['{"conn_type": "cos", "password": "s3cr3t-value"', "aws://id:s3cr3t-value@http://127.0.0.1:9000"]
)
def test_a_malformed_environment_connection_is_named_without_its_value(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BROKEN", value)
    with pytest.raises(ValueError, match="AIRFLOW_CONN_BROKEN") as info:
        from_environment("broken")
    assert "s3cr3t" not in str(info.value)


def test_a_configured_secrets_backend_sends_lookups_to_airflow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_CONFIG", raising=False)
    for name in [n for n in os.environ if n.startswith(("AIRFLOW__SECRETS__", "AIRFLOW__WORKERS__SECRETS"))]:
        monkeypatch.delenv(name)
    assert not secrets_backend_configured()
    (tmp_path / "airflow.cfg").write_text("[secrets]\nbackend = my.vault.Backend\n")
    assert secrets_backend_configured()
    (tmp_path / "airflow.cfg").write_text("[secrets]\nbackend =\n")
    assert not secrets_backend_configured()
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", "my.vault.Backend")
    assert secrets_backend_configured()
