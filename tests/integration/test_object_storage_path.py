"""Airflow's ``ObjectStoragePath`` on ``cos://`` and ``oss://``: the provider's filesystems, with the Airflow
connection named in the URL, against the local COS and OSS servers through the real SDKs.

The shared virtualenv may hold the package installed before its ``fsspec.specs`` and
``universal_pathlib.implementations`` entry points existed: the in-process tests then register exactly what
pyproject.toml declares (what those libraries do with installed entry points at import), and
``test_declared_entry_points_are_enough`` proves, in a fresh interpreter that finds them as installed metadata,
that the declarations alone make ``ObjectStoragePath("cos://...")`` work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from airflow_multicloud.checksums import crc64
from airflow_multicloud.errors import IntegrityError
from airflow_multicloud.hooks.factory import MissingConnectionError
from airflow_multicloud.stores.base import MiB

ROOT = Path(__file__).resolve().parents[2]
DECLARED = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
GROUPS = ("fsspec.specs", "universal_pathlib.implementations")
CONN_IDS = {"cos": "cos_default", "oss": "oss_default"}


def _register_declared_entry_points() -> None:
    import fsspec
    from upath import registry

    installed = {ep.name for ep in entry_points(group="universal_pathlib.implementations")}
    if {"cos", "cosn", "oss"} <= installed:
        return
    for name, target in DECLARED["fsspec.specs"].items():
        fsspec.register_implementation(name, target.replace(":", "."), clobber=True)
    for name, target in DECLARED["universal_pathlib.implementations"].items():
        registry.register_implementation(name, target.replace(":", "."), clobber=True)


@pytest.fixture
def cloud(request: pytest.FixtureRequest, clean_services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """(service, scheme, bucket) with ``AIRFLOW_CONN_<ID>`` set for the scheme's default connection, and no
    filesystem cached from another test."""
    from airflow.sdk.io import store as airflow_store

    from airflow_multicloud.fs.store_fs import StoreFileSystem

    _register_declared_entry_points()
    scheme = request.param
    service = clean_services[scheme]
    conn_id = CONN_IDS[scheme]
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(service.connection(conn_id)))
    monkeypatch.setattr(airflow_store, "_STORE_CACHE", {})
    StoreFileSystem.clear_instance_cache()
    return service, scheme, service.create_bucket()


both = pytest.mark.parametrize("cloud", ["cos", "oss"], indirect=True)


@both
def test_write_read_list_and_delete_through_the_airflow_connection(cloud: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    service, scheme, bucket = cloud
    base = ObjectStoragePath(f"{scheme}://{CONN_IDS[scheme]}@{bucket}/dir")
    path = base / "x.txt"
    assert not path.exists()
    path.write_text("hello, 世界\n")
    (base / "sub" / "deep.csv").write_bytes(b"a,b\n1,2\n")

    assert path.exists() and path.is_file()
    assert path.read_text() == "hello, 世界\n"
    assert path.stat().st_size == len("hello, 世界\n".encode())
    assert sorted(p.name for p in base.iterdir()) == ["sub", "x.txt"]
    assert (base / "sub").is_dir() and not (base / "sub").is_file()
    # the bytes sit in the bucket, as the SDK reads them back with no Airflow in between
    assert b"".join(service.store(bucket).read("dir/x.txt")) == "hello, 世界\n".encode()

    path.unlink()
    assert not path.exists()
    assert [p.name for p in base.iterdir()] == ["sub"]
    with pytest.raises(FileNotFoundError):
        path.read_text()


@both
def test_a_large_write_is_a_verified_multipart_upload(cloud: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    service, scheme, bucket = cloud
    data = os.urandom(17 * MiB)  # above the 16 MiB threshold: three 8 MiB parts, each checked by its CRC64
    path = ObjectStoragePath(f"{scheme}://{CONN_IDS[scheme]}@{bucket}/big.bin")
    with path.open("wb") as f:
        for start in range(0, len(data), 3 * MiB):
            f.write(data[start : start + 3 * MiB])
    stored = service.store(bucket).head("big.bin")
    assert stored.size == len(data) and stored.crc64 == crc64(data)
    assert "-3" in (stored.etag or "")
    with path.open("rb") as f:
        f.seek(9 * MiB)
        assert f.read(MiB) == data[9 * MiB : 10 * MiB]
    assert path.read_bytes() == data


@both
def test_bytes_changed_on_the_way_fail_the_write_and_keep_the_old_object(cloud: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    service, scheme, bucket = cloud
    path = ObjectStoragePath(f"{scheme}://{CONN_IDS[scheme]}@{bucket}/k.csv")
    path.write_text("good,old\n")
    rule = service.faults.add("flip_request", operation="PutObject", times=1)
    with pytest.raises(IntegrityError):
        path.write_text("new,bytes\n")
    assert rule.fired == 1
    assert path.read_text() == "good,old\n"


@both
def test_a_with_block_left_by_an_exception_uploads_nothing(cloud: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    _, scheme, bucket = cloud
    path = ObjectStoragePath(f"{scheme}://{CONN_IDS[scheme]}@{bucket}/half.bin")
    with pytest.raises(RuntimeError, match="producer failed"), path.open("wb") as f:
        f.write(b"first half")
        raise RuntimeError("producer failed")
    assert not path.exists()


@both
def test_copy_within_the_store_and_default_connection(cloud: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    service, scheme, bucket = cloud
    src = ObjectStoragePath(f"{scheme}://{bucket}/a/src.txt")  # no conn id in the URL: the scheme's default
    src.write_text("copied")
    dst = ObjectStoragePath(f"{scheme}://{bucket}/b/dst.txt")
    src.copy(dst)
    other = ObjectStoragePath(f"{scheme}://{service.create_bucket()}/c/dst.txt")
    service.clear_log()
    src.copy(other)
    assert not [r for r in service.requests if r.body_bytes_out], "another bucket of the same service: server-side"
    assert dst.read_text() == other.read_text() == "copied" and src.exists()
    with pytest.raises(FileNotFoundError):
        (src.parent / "absent.txt").copy(dst)


@both
def test_an_undefined_connection_is_named_with_the_remedy(cloud: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    _, scheme, bucket = cloud
    path = ObjectStoragePath(f"{scheme}://no_such_conn@{bucket}/x.txt")
    with pytest.raises(MissingConnectionError, match=r"'no_such_conn'.*AIRFLOW_CONN_NO_SUCH_CONN"):
        path.exists()


@both
def test_unknown_storage_options_are_refused_by_name(cloud: Any) -> None:
    from airflow.sdk.io import get_fs

    _, scheme, _ = cloud
    with pytest.raises(ValueError, match=r"\['endpoint_url'\] are not supported.*Airflow connection"):
        get_fs(scheme, CONN_IDS[scheme], {"endpoint_url": "http://elsewhere"})
    assert get_fs(scheme, CONN_IDS[scheme], {"part_size": 5 * MiB}).transfer.part_size == 5 * MiB


def test_declared_entry_points_are_enough(clean_services: dict[str, Any], tmp_path: Path) -> None:
    """A fresh interpreter where the entry points are installed metadata, as ``pip install`` leaves them."""
    service = clean_services["cos"]
    bucket = service.create_bucket()
    dist = tmp_path / "airflow_multicloud_entry_points-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: airflow-multicloud-entry-points\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in DECLARED[group].items())
            for group in GROUPS
        )
    )
    script = textwrap.dedent(
        f"""
        import warnings
        warnings.simplefilter("error", UserWarning)  # no "filesystem not explicitly implemented" fallback
        from airflow.sdk import ObjectStoragePath
        path = ObjectStoragePath("cos://cos_default@{bucket}/dir/x.txt")
        path.write_text("from a fresh interpreter")
        print(path.read_text(), [p.name for p in path.parent.iterdir()])
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "AIRFLOW_CONN_COS_DEFAULT": json.dumps(service.connection("cos_default")),
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "from a fresh interpreter ['x.txt']"
    assert b"".join(service.store(bucket).read("dir/x.txt")) == b"from a fresh interpreter"


def test_the_provider_registers_the_filesystems() -> None:
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    from airflow_multicloud.provider import get_provider_info

    assert get_provider_info()["filesystems"] == ["airflow_multicloud.fs.cos", "airflow_multicloud.fs.oss"]
    assert {"airflow_multicloud.fs.cos", "airflow_multicloud.fs.oss"} <= set(
        ProvidersManagerTaskRuntime().filesystem_module_names
    )


@pytest.mark.parametrize("cloud", ["cos"], indirect=True)
def test_cosn_is_the_same_filesystem(cloud: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    _, _, bucket = cloud
    ObjectStoragePath(f"cos://cos_default@{bucket}/k.txt").write_text("one store")
    cosn = ObjectStoragePath(f"cosn://cos_default@{bucket}/k.txt")
    assert cosn.read_text() == "one store" and cosn.bucket == bucket and cosn.key == "k.txt"


@both
def test_a_path_survives_serialization_with_its_connection(cloud: Any) -> None:
    """What XCom does between two tasks: the connection id travels, never a secret."""
    from airflow.sdk import ObjectStoragePath

    service, scheme, bucket = cloud
    path = ObjectStoragePath(f"{scheme}://{CONN_IDS[scheme]}@{bucket}/x.txt")
    path.write_text("passed on")
    data = path.serialize()
    assert service.connection(CONN_IDS[scheme])["password"] not in json.dumps(data, default=str)
    again = ObjectStoragePath.deserialize(data, ObjectStoragePath.__version__)
    assert again.conn_id == CONN_IDS[scheme] and again.read_text() == "passed on"
