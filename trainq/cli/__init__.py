"""The ``trainq`` command: one click group (``group``), one module of subcommands per area.

Subcommand modules import the group from ``trainq.cli.group``; importing this package registers them all.
"""

from trainq.cli import jobs, limits, migrate, monitor, pipelines, quarantine, queues, schedules, stack, web
from trainq.cli.group import main

__all__ = [
    "jobs",
    "limits",
    "main",
    "migrate",
    "monitor",
    "pipelines",
    "quarantine",
    "queues",
    "schedules",
    "stack",
    "web",
]
