"""A local test bed: moto for S3 and our own COS and OSS servers, with fault injection and request logs."""

from pathlib import Path

# The sample DAGs: the repository's dags/ in a checkout (sample_dags is a link to it), files in a built wheel.
# Resolved, as Airflow compares a DAG's file with its dags folder by path.
SAMPLE_DAGS = (Path(__file__).parent / "sample_dags").resolve()
