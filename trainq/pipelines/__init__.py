"""Pipelines: the DAG checks, the builder (``Pipeline``, pipeline files) and the run store that
releases each job when its dependencies are done.

May import ``job``, ``store``, ``broker`` and ``inputs``.
"""
