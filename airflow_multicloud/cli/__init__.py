"""The ``multicloud`` command: everything the product offers outside Airflow."""
