"""Airflow operators: thin over the engine and the validation step."""
