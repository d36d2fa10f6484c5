"""The Celery app: ``celery -A trainq worker -Q training`` finds it as ``trainq.app``.

Its configuration, the worker modules it imports included, is computed on first use (see
``_LazyConfig``), so importing trainq reads no setting and starts nothing: a bad setting is one
clear error where it is first used (under ``celery -A trainq``, one line and exit 2, see
``_check_settings``); the first use without ``TRAINQ_BROKER_URL`` starts the embedded Redis.
Every job type the app lists (trainq's own and those of ``TRAINQ_WORKER_MODULES``) is registered when
the app is finalized (its first ``app.tasks``), in every process: a client that imported only ``trainq``
sends ``trainq.command`` or ``trainq.training`` as itself (validated first, to its queue).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any

import click
from celery import Celery
from celery.utils.imports import cwd_in_path

from trainq.broker.names import check_queue
from trainq.errors import InvalidSetting
from trainq.settings import celery_config, check_worker_modules, get_settings, redacted

#: trainq's own task modules; the user's handlers come from ``TRAINQ_WORKER_MODULES``.
LIBRARY_MODULES = [
    "trainq.job.command",
    "trainq.pipelines.pipeline",
    "trainq.ops.worker",
    "trainq.job.gpus",
    "trainq.ops.metrics",
    "trainq.ops.flower",  # adapts Flower when Flower imports the app's modules
]

#: Of those, the ones that define job types: imported, with the worker modules, when the app is finalized.
LIBRARY_JOB_TYPES = ["trainq.job.command"]

#: The exit code of a bad setting, as ``trainq`` gives it (``trainq.cli.group.EXIT_BAD_INPUT``, above here).
EXIT_BAD_SETTING = 2


class _LazyConfig(Mapping[str, Any]):
    """Celery settings computed the first time Celery reads them."""

    @cached_property
    def _values(self) -> dict[str, Any]:
        settings = get_settings()
        return {**celery_config(settings), "include": LIBRARY_MODULES + settings.worker_modules}

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def route_job(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any
) -> dict[str, str] | None:
    """The routing table: each job type goes to its own queue.

    Every send through the app passes here, also those that skip ``JobTask.apply_async``
    (``celery call``, Flower's send-task, ``app.send_task``), so a reserved queue or routing
    key name is refused here (raises InvalidName) before kombu writes it into its own keys.
    ``app.send_task`` gives no task when the app is not finalized yet: it is looked up by name
    (finalizing the app), or the job would go to the default queue, which no pool reads.
    """
    for given in (options.get("queue"), options.get("routing_key")):
        if given is not None:
            check_queue(getattr(given, "name", given))
    task = task if task is not None else app.tasks.get(name)
    job_type = getattr(task, "job_type", "")
    return {"queue": task.queue or job_type} if job_type else None


def _check_settings(ctx: click.Context, param: click.Parameter, value: object) -> None:
    """Read the settings as a ``celery -A trainq`` command parses its options, before Celery reads its
    config: a bad one ends the command with one line naming it and exit 2, not a traceback."""
    try:
        check_worker_modules(get_settings())
    except InvalidSetting as error:
        click.echo(f"error: {redacted(str(error))}", err=True)
        ctx.exit(EXIT_BAD_SETTING)


def _register_job_types(sender: Celery, **_: Any) -> None:
    """Define every job type the app lists as the app is finalized: not at import, where defining a task
    would read the settings (and start the embedded Redis), but before any task is looked up, so that a
    process that never imports the worker modules itself (``trainq``, ``celery call``, a Python client)
    routes and validates their jobs. Raises InvalidSetting naming a worker module not found."""
    for module in LIBRARY_JOB_TYPES:
        importlib.import_module(module)
    settings = get_settings()
    check_worker_modules(settings)
    with cwd_in_path():  # where Celery's loader looks for them too
        for module in settings.worker_modules:
            importlib.import_module(module)


app = Celery("trainq")
app.config_from_object(_LazyConfig())
app.conf.task_routes = (route_job,)
app.on_after_finalize.connect(_register_job_types, weak=False)
# Celery's command line adds the app's preload options to each of its commands (Flower's too): this
# hidden one is eager, so it runs before the others (bar ``--help``), and ``import trainq`` reads nothing.
app.user_options["preload"].add(
    click.Option(
        ["--trainq-check-settings"],
        is_flag=True,
        is_eager=True,
        expose_value=False,
        hidden=True,
        callback=_check_settings,
    )
)
