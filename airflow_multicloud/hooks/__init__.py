"""Airflow connections -> stores. SDKs are imported where used, so DAG parsing stays fast."""
