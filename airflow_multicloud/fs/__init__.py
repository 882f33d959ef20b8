"""fsspec filesystems for ``cos://`` and ``oss://``, registered with Airflow for ``ObjectStoragePath``."""
