"""Jobs from clients without trainq: a Celery message's first delivery that has no record.

Such a job (another service's ``send_task("trainq.data", kwargs=...)``, a message written by
another language) is recorded by the worker that receives it, tagged ``source=celery-client``.
trainq's own options may come in the message's ``trainq`` header, checked like a payload.
The same rules hold for what such a client sends through trainq: the canvas steps its message
carries (sent later by a worker, ``JobTask.send_step``) and a job Flower's task API applies in a
process where Flower may not send shell commands (``flower_refusal``).
"""

from __future__ import annotations

import math
import sys
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainq.errors import InvalidInput
from trainq.inputs.documents import brief, text_problem
from trainq.inputs.problems import validated
from trainq.inputs.tags import tags_problem
from trainq.job.payloads import describe
from trainq.settings import get_settings

#: The ``source`` tag of a job first recorded by a worker: sent by a Celery client without trainq.
FOREIGN_SOURCE = "celery-client"
#: The message header in which a client without trainq may set trainq's options (``ClientOptions``).
OPTIONS_HEADER = "trainq"


class ClientOptions(BaseModel):
    """trainq's options a client without trainq may set: a JSON object in the ``trainq`` header.

    No ``cwd`` or ``result_files``: access to the broker alone must not make a worker copy files
    from its own disk into the artifact store.
    """

    model_config = ConfigDict(extra="forbid")

    job_name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    retry: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None  # values checked with every route's (``JobTask.new_record``)


def time_limit_problem(timelimit: Any) -> str | None:
    """Why a message's ``timelimit`` header (Celery's ``[time_limit, soft_time_limit]``) is not one a job
    can run by, or None. Celery would enforce a negative limit at once, before the job is recorded."""
    if timelimit is None:
        return None
    if not isinstance(timelimit, (list, tuple)) or len(timelimit) != 2:
        return f"invalid time limits {timelimit!r}: expected [time_limit, soft_time_limit] in seconds"
    for name, value in zip(("time_limit", "soft_time_limit"), timelimit, strict=True):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is not None and not (number and math.isfinite(value) and value > 0):
            return f"invalid {name} {value!r}: must be a positive number of seconds"
    return None


def header_options(headers: Any) -> dict[str, Any]:
    """The options in a message's ``trainq`` header, tagged as a client's; raises InvalidInput."""
    if headers is not None and not isinstance(headers, dict):
        raise InvalidInput(f"invalid message headers {brief(headers)}: expected an object")
    return checked_options((headers or {}).get(OPTIONS_HEADER, {}), f"{OPTIONS_HEADER!r} header")


def checked_options(given: Any, where: str) -> dict[str, Any]:
    """trainq's options a client without trainq gave ``where``, checked as ``ClientOptions`` and tagged
    as a client's; raises InvalidInput naming ``where``."""
    if problem := text_problem(given):
        raise InvalidInput(f"invalid {where}: {problem}")
    checked, errors = validated(ClientOptions, given)
    if checked is None:
        raise InvalidInput(f"invalid {where}: {'; '.join(describe(errors, ClientOptions))}")
    options = checked.model_dump(exclude_none=True)
    if problem := tags_problem(options["tags"]):
        raise InvalidInput(f"invalid {where}: {problem}")
    options["tags"] = {**options["tags"], "source": FOREIGN_SOURCE}
    return options


def flower_refusal() -> str | None:
    """Why this process may not send a command job: it serves Flower, whose task API would run any
    shell command, and ``TRAINQ_WEB_ALLOW_COMMANDS`` is off or Flower has no authentication."""
    events = sys.modules.get("flower.events")
    if events is None or not any(isinstance(t, events.Events) for t in threading.enumerate()):
        return None  # celery's CLI imports Flower everywhere; only Flower itself runs its event thread
    from flower.options import options

    if not get_settings().web_allow_commands:
        return "command jobs cannot be submitted through Flower (set TRAINQ_WEB_ALLOW_COMMANDS=true)"
    if not (options.basic_auth or options.auth):
        return "command jobs can be submitted through Flower only with Flower authentication on"
    return None
