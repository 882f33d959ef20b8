"""docker/: the compose file, the secrets generator, the Dockerfile and the Helm values agree with each other.

No image can be pulled here, so nothing is started: these checks read the files (and run ``docker compose config``
where the compose plugin is installed). What Airflow needs consistent between components is checked service by
service: a component with another fernet key cannot read connections, another JWT secret or ``[api] secret_key``
refuses task calls or task logs, another executor, database or broker splits the deployment in two.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from airflow_multicloud import __version__

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
HELM = yaml.safe_load((DOCKER / "helm" / "values.yaml").read_text())
AIRFLOW_SERVICES = {"airflow-init", "api-server", "scheduler", "dag-processor", "triggerer", "worker-1", "worker-2"}
WORKERS = {"worker-1", "worker-2"}
LONG_RUNNING = set(SERVICES) - {"airflow-init"}
#: set inline, identical everywhere
SHARED_INLINE = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__AUTH_MANAGER",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
)
#: secret, from the one generated env file every Airflow service reads
SHARED_SECRET = (
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__RESULT_BACKEND",
)


def _load_generator() -> Any:
    sys.path.insert(0, str(DOCKER))
    try:
        import generate_secrets

        return generate_secrets
    finally:
        sys.path.remove(str(DOCKER))


def _env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def _env_files(service: dict[str, Any]) -> list[str]:
    return [entry["path"] if isinstance(entry, dict) else entry for entry in service.get("env_file", [])]


def _constraint(name: str) -> str:
    match = re.search(rf"^{re.escape(name)}==(\S+)$", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
    assert match, f"{name} is not pinned in constraints.txt"
    return match.group(1)


def _default_image() -> str:
    images = {SERVICES[name]["image"] for name in AIRFLOW_SERVICES}
    assert len(images) == 1, f"Airflow services run different images: {images}"
    match = re.fullmatch(r"\$\{AIRFLOW_MULTICLOUD_IMAGE:-(.+)\}", images.pop())
    assert match, "the image is ${AIRFLOW_MULTICLOUD_IMAGE:-name:tag}"
    return match.group(1)


def test_every_airflow_service_runs_the_one_image_built_from_the_dockerfile() -> None:
    built = {name for name, svc in SERVICES.items() if "build" in svc}
    assert built == AIRFLOW_SERVICES
    assert all(SERVICES[name]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"} for name in built)
    assert _default_image() == f"airflow-multicloud:{__version__}"


def test_settings_the_components_share_are_the_same_everywhere() -> None:
    for key in SHARED_INLINE:
        values = {name: SERVICES[name].get("environment", {}).get(key) for name in AIRFLOW_SERVICES}
        assert len(set(values.values())) == 1 and None not in values.values(), f"{key} differs: {values}"
    for name in AIRFLOW_SERVICES:
        env = SERVICES[name].get("environment", {})
        # in compose an inline value beats the env file: one here would give this service its own secret
        assert not set(SHARED_SECRET) & set(env), f"{name} sets {set(SHARED_SECRET) & set(env)} inline"
        assert _env_files(SERVICES[name])[:2] == ["secrets/airflow.env", "clouds.env"], name
    env = SERVICES["scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname in SERVICES
    api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert api.hostname == "api-server" and any(p.endswith(f":{api.port}") for p in SERVICES["api-server"]["ports"])


def test_the_admin_login_reaches_only_the_init_service() -> None:
    holders = {name for name, svc in SERVICES.items() if "secrets/admin.env" in _env_files(svc)}
    assert holders == {"airflow-init"}
    assert _env_files(SERVICES["postgres"]) == ["secrets/postgres.env"]


def test_init_gates_the_others_and_every_awaited_service_has_a_healthcheck() -> None:
    init = SERVICES["airflow-init"]
    assert init["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert init["restart"] == "no"
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        deps = SERVICES[name]["depends_on"]
        assert deps["airflow-init"] == {"condition": "service_completed_successfully"}, name
        assert deps["postgres"] == deps["redis"] == {"condition": "service_healthy"}, name
    for name in WORKERS | {"scheduler", "triggerer", "dag-processor"}:
        assert SERVICES[name]["depends_on"]["api-server"] == {"condition": "service_healthy"}, name
    for name in LONG_RUNNING:
        assert SERVICES[name]["restart"] == "always", name
        assert SERVICES[name]["healthcheck"]["test"], name
    awaited = {
        dep
        for svc in SERVICES.values()
        for dep, cond in svc.get("depends_on", {}).items()
        if cond["condition"] == "service_healthy"
    }
    assert awaited <= {name for name, svc in SERVICES.items() if "healthcheck" in svc}
    assert "8974" in str(SERVICES["scheduler"]["healthcheck"]["test"])
    assert SERVICES["scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"


def test_postgres_keeps_its_data_in_a_volume_and_only_loopback_is_published() -> None:
    assert "postgres-db:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    assert "postgres-db" in COMPOSE["volumes"]
    published = [port for svc in SERVICES.values() for port in svc.get("ports", [])]
    assert published and all(port.startswith("127.0.0.1:") for port in published)
    # the API server fetches a task's log from the worker by the hostname the task instance recorded
    assert {SERVICES[name]["hostname"] for name in WORKERS} == WORKERS


def test_generated_secrets_are_consistent_and_never_replaced_silently(tmp_path: Path) -> None:
    gen = _load_generator()
    gen.write(tmp_path)
    airflow = _env_file(tmp_path / "airflow.env")
    postgres = _env_file(tmp_path / "postgres.env")
    admin = _env_file(tmp_path / "admin.env")
    assert set(SHARED_SECRET) <= set(airflow)
    assert len(base64.urlsafe_b64decode(airflow["AIRFLOW__CORE__FERNET_KEY"])) == 32
    db = urlsplit(airflow["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (db.hostname, db.username, db.password, db.path) == (
        "postgres",
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        f"/{postgres['POSTGRES_DB']}",
    )
    assert airflow["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + airflow["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert admin["_AIRFLOW_WWW_USER_USERNAME"] == "admin" and len(admin["_AIRFLOW_WWW_USER_PASSWORD"]) >= 12
    assert all((tmp_path / name).stat().st_mode & 0o077 == 0 for name in ("airflow.env", "postgres.env", "admin.env"))

    before = (tmp_path / "airflow.env").read_text()
    assert gen.main(["--dir", str(tmp_path)]) == 1  # a second run would orphan every encrypted connection
    assert (tmp_path / "airflow.env").read_text() == before
    assert gen.main(["--dir", str(tmp_path), "--force"]) == 0
    assert _env_file(tmp_path / "airflow.env")["AIRFLOW__CORE__FERNET_KEY"] != airflow["AIRFLOW__CORE__FERNET_KEY"]


def test_generated_secrets_and_filled_in_connections_are_git_ignored() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["docker/secrets/airflow.env", "docker/secrets/admin.env", "docker/clouds.env"]
    done = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.split() == paths


def test_the_image_is_the_official_airflow_one_at_the_tested_version_without_test_tools() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert f"ARG AIRFLOW_VERSION={_constraint('apache-airflow')}" in dockerfile
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert bases and all(b.startswith("apache/airflow:${AIRFLOW_VERSION}-python") for b in bases)
    install = next(line for line in dockerfile.splitlines() if "pip install" in line)
    assert "-c /tmp/constraints.txt" in install and "testbed" not in install and "moto" not in install
    # the product's sources only: the test bed (testbed/) is neither copied nor in the build context
    copied = [line.split()[-2] for line in dockerfile.splitlines() if line.startswith("COPY") and "--from" not in line]
    assert "airflow_multicloud" in copied and not any("testbed" in c for c in copied)
    context = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in context and not any("testbed" in line for line in context if line.startswith("!"))


def test_helm_values_run_the_same_image_and_topology() -> None:
    name, tag = _default_image().rsplit(":", 1)
    assert (HELM["images"]["airflow"]["repository"], HELM["images"]["airflow"]["tag"]) == (name, tag)
    assert HELM["airflowVersion"] == _constraint("apache-airflow")
    compose_env = SERVICES["scheduler"]["environment"]
    assert HELM["executor"] == compose_env["AIRFLOW__CORE__EXECUTOR"]
    assert HELM["config"]["core"]["auth_manager"] == compose_env["AIRFLOW__CORE__AUTH_MANAGER"]
    assert HELM["workers"]["replicas"] == len(WORKERS)
    # secrets named, not generated by the chart (a re-render would rotate them and split the components)
    for key in ("fernetKeySecretName", "jwtSecretName", "apiSecretKeySecretName"):
        assert HELM[key], key
    assert HELM["data"]["metadataSecretName"] and HELM["data"]["resultBackendSecretName"]
    assert HELM["redis"]["enabled"] is True


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker CLI with the compose plugin is not installed: the structure checks above stand in")
    work = tmp_path / "docker"
    work.mkdir()
    shutil.copy(DOCKER / "docker-compose.yml", work)
    _load_generator().write(work / "secrets")
    done = subprocess.run(
        [docker, "compose", "-f", str(work / "docker-compose.yml"), "config", "-q"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
