"""The commands that run the local clouds (``serve-local``, ``demo``, ``airflow-local``) need the test bed, a
distribution of its own (``airflow-multicloud-testbed``, in this repository's ``testbed/``): the product wheel does
not carry the local servers, nor moto."""

from __future__ import annotations

import importlib
import sys

TESTBED_MODULES = ("multicloud_testbed", "moto")


def require_testbed(command: str) -> None:
    """Exit 2 (nothing was started) with what to install when the test bed or moto cannot be imported."""
    missing = []
    for name in TESTBED_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        print(
            f"multicloud {command}: needs the test bed (local S3, COS and OSS servers), which is not installed "
            f"(no module {' or '.join(missing)}). Install the airflow-multicloud-testbed distribution from a "
            "checkout of the repository: pip install -e ./testbed (make install does it); it brings moto.",
            file=sys.stderr,
        )
        raise SystemExit(2)
