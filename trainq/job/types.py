"""Job types: the ``job_type`` decorator that turns a handler into a routed Celery task."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel

from trainq.broker.names import check_job_type, check_queue
from trainq.errors import UnknownJobType
from trainq.job.context import Job
from trainq.job.limit import parse_limit
from trainq.job.payloads import Extra, extra_policy
from trainq.job.retry import RetryPolicy
from trainq.job.task import JobTask

Payload = TypeVar("Payload", bound=BaseModel)
TASK_PREFIX = "trainq."


def task_name(job_type: str) -> str:
    """The Celery task name of ``job_type`` (``trainq.training``)."""
    return f"{TASK_PREFIX}{job_type}"


def _run(self: JobTask, *args: Any, **payload: Any) -> Any:
    return self.execute(*args, **payload)


def job_type(
    name: str,
    *,
    input: type[Payload],
    output: type[BaseModel] | None = None,
    queue: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: str | None = None,
    limit: dict[str, Any] | None = None,
    fair: bool = False,
    extra: Extra | None = None,
    base: type[JobTask] = JobTask,
) -> Callable[[Callable[[Job, Payload], Any]], JobTask]:
    """Register ``handler(job, payload)`` as job type ``name`` on ``queue`` (default: ``name``).

    ``input`` validates payloads before anything is sent; ``output``, if given, validates the
    handler's result, stored as JSON. ``retry``, ``timeout`` and ``limit`` (a key template and its
    policy, ``trainq.job.limit.Limit``) are the type's defaults; ``fair`` makes its jobs of different
    keys start in turns (docs/sharing.md, "Fair queues"); ``base``
    is the task class (a ``JobTask`` subclass). Unknown payload fields are refused unless
    ``extra`` (or the model's own ``extra`` config) says ``allow`` or ``ignore``.
    """
    from trainq.celery import app

    check_job_type(name)
    check_queue(queue or name)
    if limit is not None:
        parse_limit(limit)

    def decorate(handler: Callable[[Job, Payload], Any]) -> JobTask:
        options = {
            "name": task_name(name),
            "base": base,
            "bind": True,
            "shared": False,
            "job_type": name,
            "queue": queue or name,
            "input_model": input,
            "extra": extra_policy(input, extra),
            "output_model": output,
            "policy": retry,
            "default_timeout": timeout,
            "default_limit": limit,
            "fair": fair,
            "handler": staticmethod(handler),
        }
        task: JobTask = app.task(**options)(_run)
        task.__doc__ = handler.__doc__
        return task

    return decorate


def get_job_type(name: str) -> JobTask:
    """The task of job type ``name``; raises UnknownJobType listing the known ones."""
    types = job_types()
    if name not in types:
        raise UnknownJobType(name, list(types))
    return types[name]


def job_types() -> dict[str, JobTask]:
    """Every registered job type by name (imports the worker modules first)."""
    from trainq.celery import app

    _import_worker_modules()
    return {t.job_type: t for t in app.tasks.values() if isinstance(t, JobTask) and t.job_type}


@cache
def _import_worker_modules() -> None:
    """Import the worker modules, once per process: a pipeline's every release asks for the job types."""
    from trainq.celery import app
    from trainq.settings import check_worker_modules, get_settings

    check_worker_modules(get_settings())
    app.loader.import_default_modules()
