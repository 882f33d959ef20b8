"""Provider registration (entry point ``apache_airflow_provider``).

Static data only, on purpose: a ``get_provider_info`` that raises breaks every ``airflow`` command.
"""

from __future__ import annotations

from typing import Any

from airflow_multicloud import __version__
from airflow_multicloud.schemes import SCHEMES

_STRING = {"type": ["string", "null"]}
_SECRET = {"type": ["string", "null"], "format": "password"}

COS_CONNECTION: dict[str, Any] = {
    "connection-type": "cos",
    "hook-class-name": "airflow_multicloud.hooks.cos.CosHook",
    "hook-name": "Tencent Cloud COS",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "host"],
        "relabeling": {"login": "SecretId", "password": "SecretKey"},
        "placeholders": {"login": "AKID...", "password": "your SecretKey"},
    },
    "conn-fields": {
        "region": {"label": "Region", "description": "e.g. ap-guangzhou", "schema": _STRING},
        "token": {"label": "Session token", "description": "temporary credentials only", "schema": _SECRET},
        "scheme": {"label": "Scheme", "description": "https (default) or http", "schema": _STRING},
        "endpoint": {
            "label": "Endpoint override",
            "description": "send requests to this address (private endpoint, proxy, local test server)",
            "schema": _STRING,
        },
    },
}

# "multicloud_oss", not "oss": Airflow's Alibaba provider already registers the "oss" type.
OSS_CONNECTION: dict[str, Any] = {
    "connection-type": "multicloud_oss",
    "hook-class-name": "airflow_multicloud.hooks.oss.OssHook",
    "hook-name": "Alibaba Cloud OSS (multicloud)",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "host"],
        "relabeling": {"login": "AccessKey ID", "password": "AccessKey Secret"},
        "placeholders": {"login": "LTAI...", "password": "your AccessKey secret"},
    },
    "conn-fields": {
        "region": {"label": "Region", "description": "e.g. cn-hangzhou (required for signature v4)", "schema": _STRING},
        "endpoint": {
            "label": "Endpoint",
            "description": "e.g. https://oss-cn-hangzhou.aliyuncs.com; derived from the region when empty",
            "schema": _STRING,
        },
        "auth_version": {
            "label": "Signature version",
            "description": "v4 (default) or v1",
            "schema": {"type": ["string", "null"], "default": "v4", "enum": ["v4", "v1", None]},
        },
        "security_token": {
            "label": "STS security token",
            "description": "temporary credentials only",
            "schema": _SECRET,
        },
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-multicloud",
        "name": "Multicloud",
        "description": "Verified replicas of datasets across AWS S3, Tencent Cloud COS and Alibaba Cloud OSS.",
        "versions": [__version__],
        "connection-types": [COS_CONNECTION, OSS_CONNECTION],
        "extra-links": [
            "airflow_multicloud.operators.links.ManifestLink",
            "airflow_multicloud.operators.links.ValidationReportLink",
        ],
        "asset-uris": [
            {
                "schemes": list(spec.spellings),
                "handler": f"{spec.asset_module}.sanitize_uri",
                "factory": f"{spec.asset_module}.create_asset",
                "to_openlineage_converter": f"{spec.asset_module}.convert_asset_to_openlineage",
            }
            for spec in SCHEMES.values()
            if spec.asset_module
        ],
        "filesystems": [spec.fs_module for spec in SCHEMES.values() if spec.fs_module],
    }
