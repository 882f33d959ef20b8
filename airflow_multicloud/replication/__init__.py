"""The replication engine: plan, copy (stream, fan out, verify), manifest. It knows no SDK and no Airflow."""
