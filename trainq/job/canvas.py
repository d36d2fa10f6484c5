"""Canvas: how the steps Celery's chain, group, chord and link send from a worker become jobs.

Celery sends a step from the worker that ran its parent, the parent's result as the step's one
positional argument (none for ``.si``). A dict result fills the step's input fields the caller
left unset; the whole result is the record's ``parent_result``. ``JobTask.send_step`` records and
sends the step, or records it ``failed`` and tells Celery (chain, chord, errbacks) through a
request built here; the steps after a failed one, and the callback of the chord it reports to (as a
member, or through its chain), are recorded ``blocked``. A blocked step Celery sends after all (the
failed step was retried and succeeded) is rebuilt from its parent's result and sent: the chain goes on.
A caller's retry is refused where it would leave the canvas (``retry_refusal``): a chord member's
(Celery counts each member's end once, so its chord could never complete) and a blocked step's.

A step is trusted as much as the delivery whose canvas sends it (``origin``): one that came in the
message of a client without trainq is that client's job, held to its rules (``trainq.job.clients``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from celery import Celery, Signature, signature
from celery.app.task import Context
from pydantic import BaseModel

from trainq.errors import InvalidInput
from trainq.job.payloads import fill_from_parent
from trainq.job.record import JobRecord, JobState

#: The ``source`` tag of a job sent by Celery's canvas from a worker (a chain step, link or chord callback).
CANVAS_SOURCE = "canvas"

#: Celery's options that place a job in its canvas: what a re-send needs for the canvas to go on.
CANVAS_OPTIONS = ("chain", "chord", "link", "link_error", "group_id", "group_index", "root_id", "parent_id")

#: Of those, the ones that make a job a canvas member (ids alone do not: a job sent from a handler has them).
MEMBER_OPTIONS = ("chain", "chord", "link", "link_error", "group_id")

#: What blocks a step Celery will not send, as its ``blocked_reason`` names it.
CHAIN_STEP, CHORD_MEMBER = "an earlier chain step", "a member of its chord"


#: The delivery whose canvas a worker's main process sends now (``sending_for``).
_main_process_origin: ContextVar[Context | None] = ContextVar("trainq_canvas_origin", default=None)


def origin(app: Celery) -> Context | None:
    """The request of the delivery whose canvas (chain, links, errbacks, chord callback) this worker
    process sends now, or None outside a worker's canvas: the caller's own send.

    In a pool process that is Celery's current task; in a worker's main process, the delivery it
    fails there (``sending_for``): a hard time limit, a lost pool process, a revoke.
    """
    task = app.current_worker_task
    return task.request if task is not None else _main_process_origin.get()


@contextmanager
def sending_for(request: Context) -> Iterator[None]:
    """Within: the steps a worker's main process sends are ``request``'s canvas (see ``origin``)."""
    token = _main_process_origin.set(request)
    try:
        yield
    finally:
        _main_process_origin.reset(token)


def kept_options(options: dict[str, Any]) -> dict[str, Any] | None:
    """The canvas options of a canvas member's Celery ``options``, to keep beside its record; None
    for a job in no canvas (the common case, which keeps nothing)."""
    if not any(options.get(k) for k in MEMBER_OPTIONS):
        return None
    return {k: options[k] for k in CANVAS_OPTIONS if options.get(k) is not None}


def step_payload(model: type[BaseModel], job_type: str, args: Any, kwargs: Any) -> dict[str, Any]:
    """A step's payload: its keyword arguments, filled from a dict parent result; raises InvalidInput."""
    if len(args or ()) > 1:
        raise InvalidInput(
            f"job type {job_type!r} takes keyword arguments only; "
            "a canvas step gets one positional argument, its parent's result"
        )
    return fill_from_parent(model, kwargs, args[0] if args else None)


def failure_request(task_id: str, name: str, args: Any, kwargs: Any, options: dict[str, Any]) -> Context:
    """The request Celery's backend needs to fail a step that was never sent (chain, chord, errbacks)."""
    return Context(
        id=task_id,
        task=name,
        args=list(args or ()),
        kwargs=kwargs,
        chain=options.get("chain"),
        errbacks=options.get("link_error"),
        chord=options.get("chord"),
        group_id=options.get("group_id"),
        group_index=options.get("group_index"),
        parent_id=options.get("parent_id"),
        root_id=options.get("root_id"),
        delivery_info={},
    )


def chain_steps(app: Celery, chain: Any) -> Iterator[tuple[Any, str, dict[str, Any], dict[str, Any]]]:
    """``(task, task_id, kwargs, options)`` of each job type step with a frozen id in a request's chain."""
    for step in chain or ():
        sig = signature(step, app=app)
        task, task_id = app.tasks.get(sig.task), sig.options.get("task_id")
        if getattr(task, "job_type", "") and task_id:
            yield task, task_id, dict(sig.kwargs), {**sig.options, "tags": {"source": CANVAS_SOURCE}}


def chord_steps(app: Celery, chord: Any) -> Iterator[tuple[Any, str, dict[str, Any], dict[str, Any]]]:
    """As ``chain_steps``, for a chord member's ``chord`` (its callback, or the chain or group a chord
    in a chain gets as callback) and the chain steps after it: Celery fails them all with the chord."""
    if chord:
        callback = signature(chord, app=app)
        steps = getattr(callback, "tasks", None) or [callback]
        yield from chain_steps(app, [*steps, *(callback.options.get("chain") or ())])


def reported_chord(app: Celery, chain: Any, chord: Any) -> Signature | None:
    """The callback of the chord a job with Celery's ``chain`` and ``chord`` options reports its end to
    (as a member, or through a later step of its chain: a chain in a chord's header), or None."""
    for step_chord in [chord, *(signature(s, app=app).options.get("chord") for s in chain or ())]:
        if step_chord:
            return signature(step_chord, app=app)
    return None


def blocked_reason(kind: str, outcome: str, job_id: str) -> str:
    """Why a step Celery will not send is recorded ``blocked``: ``job_id``, of ``kind``, ended ``outcome``."""
    return f"{kind} {outcome}: {job_id}"


def blocker(record: JobRecord) -> tuple[str, str] | None:
    """``(kind, job id)`` of what blocks ``record``, read from its ``blocked_reason``; None unless it is
    a canvas step recorded ``blocked``."""
    error = record.error or ""
    for kind in (CHAIN_STEP, CHORD_MEMBER):
        if record.state is JobState.BLOCKED and error.startswith(f"{kind} "):
            return kind, error.rpartition(": ")[2]
    return None


def retry_refusal(app: Celery, record: JobRecord, options: dict[str, Any]) -> str | None:
    """Why a caller's retry of ``record`` (its kept canvas ``options``) is refused, or None.

    Celery counts each chord member's end once: a member retried (or a step whose chain ends in one)
    would never reach its chord, and a blocked callback retried would run without its members' results.
    A blocked chain step retried would run without its parent's result and stop its chain; the retry
    of the step that blocks it goes on with the chain.
    """
    if (callback := reported_chord(app, options.get("chain"), options.get("chord"))) is not None:
        return (
            f"job {record.id} is a member of a chord that already counted it {record.state.value} "
            f"(callback {callback.id}); Celery counts each member of a chord once, so a retry could "
            "never run the callback: send the chord again"
        )
    if (blocked := blocker(record)) is None:
        return None
    kind, job_id = blocked
    if kind == CHAIN_STEP:
        return (
            f"job {record.id} is a blocked chain step: retry the step that blocks it, {job_id} "
            "(its success continues the chain)"
        )
    return (
        f"job {record.id} is blocked by {job_id}, a member of a chord that Celery counted already "
        "(it counts each member once): send the chord again; a retry would run it without the "
        "chord's results"
    )
