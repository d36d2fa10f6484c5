"""Pipelines: DAGs of jobs (placeholder until the pipelines issue lands)."""
