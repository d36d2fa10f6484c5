"""Names: the one rule every queue name and job type name follows, checked wherever one enters.

A queue name becomes a Redis key of the broker (and, with priorities, ``<queue>:<n>``), so
a name equal to a key that kombu, Celery, redbeat or trainq itself keeps there (``unacked``,
``_kombu.binding.*``, ``celery-task-meta-*``, ``trainq:*``) would turn that key into a list
and take every worker on the broker down. A job type name is a queue name by default.

A job id a caller chooses (Celery's ``task_id``) names the job's directories on the worker
(``Job.checkpoint_dir``), so it may not be a path: ``../x`` or ``/etc`` are refused.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from trainq.errors import InvalidInput, InvalidName
from trainq.inputs.documents import brief
from trainq.inputs.limits import JOB_ID_MAX_CHARS, NAME_MAX_CHARS

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RULE = (
    f"use at most {NAME_MAX_CHARS} letters, digits, '_', '-' or '.', starting with a letter or digit, "
    "and not a name kombu, Celery, redbeat or trainq keeps in the broker"
)

JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+=-]*")
JOB_ID_RULE = (
    f"use at most {JOB_ID_MAX_CHARS} letters, digits, '_', '-', '.', ':', '@', '+' or '=', "
    "starting with a letter or digit (a job id names the job's directories)"
)

#: Keys kombu's Redis transport keeps beside the queues.
KOMBU_KEYS = frozenset({"unacked", "unacked_index", "unacked_mutex"})
#: Name prefixes of keys and queues kombu, Celery and redbeat own.
RESERVED_PREFIXES = ("_kombu", "celeryev", "celery-task-meta-", "celery-taskset-meta-", "redbeat")
#: Celery's default queue: messages of tasks trainq does not route land there.
CELERY_QUEUE = "celery"


def check_name(name: object, what: str, key_prefix: str = "trainq:") -> str:
    """``name`` if it follows the naming rule, else raise InvalidName saying which part it breaks."""
    if not isinstance(name, str):
        raise InvalidName(what, repr(name), f"must be a string; {RULE}")
    problem = _problem(name, key_prefix)
    if problem:
        raise InvalidName(what, name, f"{problem}; {RULE}")
    return name


def check_queue(name: object, key_prefix: str | None = None) -> str:
    """``name`` if it may be a queue name (see ``check_name``)."""
    return check_name(name, "queue", _prefix(key_prefix))


def check_job_type(name: object, key_prefix: str | None = None) -> str:
    """``name`` if it may be a job type name (see ``check_name``)."""
    return check_name(name, "job type", _prefix(key_prefix))


def is_queue_name(name: str, key_prefix: str | None = None) -> bool:
    """True if ``name`` may be a queue name (see ``check_name``)."""
    return _problem(name, _prefix(key_prefix)) is None


def check_job_id(job_id: object) -> str:
    """``job_id`` if it may be a job's id, else raise InvalidInput: never a path or a hidden name."""
    if isinstance(job_id, str) and len(job_id) > JOB_ID_MAX_CHARS:
        raise InvalidInput(
            f"invalid job id {brief(job_id)}: it is {len(job_id)} characters; at most {JOB_ID_MAX_CHARS}"
        )
    if isinstance(job_id, str) and JOB_ID_PATTERN.fullmatch(job_id):
        return job_id
    raise InvalidInput(f"invalid job id {brief(job_id)}: {JOB_ID_RULE}")


def _queue_field(name: str) -> str:
    try:
        return check_queue(name)
    except InvalidName as exc:
        raise ValueError(str(exc)) from None


#: A pydantic field type for a queue name (pipeline files, settings).
QueueName = Annotated[str, AfterValidator(_queue_field)]


def _prefix(key_prefix: str | None) -> str:
    if key_prefix is not None:
        return key_prefix
    from trainq.settings import get_settings

    return get_settings().key_prefix


def _problem(name: str, key_prefix: str) -> str | None:
    if not name:
        return "it is empty"
    if len(name) > NAME_MAX_CHARS:
        return f"it is {len(name)} characters long"
    if not NAME_PATTERN.fullmatch(name):
        return "it has a character outside the allowed set"
    lowered = name.lower()
    if lowered in KOMBU_KEYS:
        return "kombu keeps its unacknowledged messages under that key"
    if lowered == CELERY_QUEUE or lowered.startswith(RESERVED_PREFIXES) or "pidbox" in lowered:
        return "kombu, Celery or redbeat use that name"
    # "trainq" itself too: its priority keys (trainq:1 ... trainq:9) would sit among trainq's own.
    if key_prefix and (name.startswith(key_prefix) or name == key_prefix.rstrip(":")):
        return f"trainq's own keys start with {key_prefix!r}"
    return None
