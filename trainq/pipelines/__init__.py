"""Pipelines: the DAG checks, the builder (``Pipeline``, pipeline files), the run store that
releases each job when its dependencies are done, and the lifecycle plugin that moves a run on
as its jobs end (``progress``).

May import ``job``, ``store``, ``broker`` and ``inputs``.
"""
