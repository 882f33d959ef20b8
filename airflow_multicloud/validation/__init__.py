"""Data-level validation: row counts and expectation suites over byte-range sources (no cloud SDKs)."""
