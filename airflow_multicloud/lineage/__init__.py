"""Lineage: Assets for dataset URIs, OpenLineage datasets, hook-level lineage."""
