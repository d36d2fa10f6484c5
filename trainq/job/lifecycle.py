"""A job's lifecycle: the state machine (``finish``, ``fail_attempt``, ``recover``, ``requeue``,
``cancel``, ``retry``) and the one protocol the features that react to it plug into.

Like Dramatiq's middleware, each feature (artifacts, pipelines, metrics) is one ``Plugin``
subclass in its own module, registered in order with ``use`` (the package root registers
trainq's own). A finish is one round trip: the state change, its counters and each plugin's
``finishing`` writes go in one script call, and commit only if the change is applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from trainq.errors import BrokerUnavailable, InvalidTransition, PayloadError
from trainq.job import canvas, send
from trainq.job.record import RETRYABLE_STATES, WAITING_STATES, JobEvent, JobRecord, JobState
from trainq.job.retry import backoff_s
from trainq.settings import get_settings
from trainq.store.registry import Effects, Registry

if TYPE_CHECKING:
    from celery.app.task import Context

    from trainq.job.task import JobTask

log = logging.getLogger("trainq.job.lifecycle")

#: What a manual retry resets: a new attempt series on the job's payload.
RETRY_RESET: dict[str, Any] = {
    "attempt": 1,
    "failures": 0,
    "recoveries": 0,
    "error": None,
    "traceback": None,
    "started_at": None,
    "finished_at": None,
    "result": None,
    "exit_code": None,
    "progress": None,
    "worker": None,
}

#: What a blocked canvas step takes from its record rebuilt when its canvas goes on (``unblock``).
_STEP_FIELDS = ("name", "priority", "payload", "options", "parent_result")

#: What a retry that could not be sent puts back (the rest of ``RETRY_RESET`` stays reset).
_KEPT_ON_UNSENT_RETRY = ("attempt", "failures", "recoveries", "error", "traceback", "started_at", "exit_code")


class Plugin:
    """A feature reacting to a job's lifecycle moments; every method does nothing by default."""

    def succeeding(self, record: JobRecord) -> dict[str, Any]:
        """Fields to record with a success, in the handler's process; raise to fail the attempt."""
        return {}

    def finishing(self, record: JobRecord, effects: Effects) -> None:
        """Queue writes that commit with ``record``'s finish (the final record), only if it is applied."""

    def finished(self, record: JobRecord, replies: list[Any]) -> None:
        """After ``record``'s finish committed, with the replies to this plugin's ``finishing`` writes."""

    def sweep(self, registry: Registry) -> int:
        """In each worker's reaper, every interval: repairs and expiry; returns how many were handled."""
        return 0

    def gate(self, record: JobRecord) -> send.Hold | None:
        """The gate ``record`` meets when it is queued again holding no place (a manual retry's new
        attempt series), after its record is written and before it is sent; None if it has none here."""
        return None


_plugins: list[Plugin] = []


def use(*plugins: Plugin) -> None:
    """Register ``plugins`` after those registered before (each runs in registration order)."""
    _plugins.extend(p for p in plugins if p not in _plugins)


def plugins() -> tuple[Plugin, ...]:
    """The registered plugins, in order."""
    return tuple(_plugins)


def succeeding(record: JobRecord) -> dict[str, Any]:
    """Every plugin's fields for ``record``'s success, merged in order."""
    fields: dict[str, Any] = {}
    for plugin in _plugins:
        fields.update(plugin.succeeding(record))
    return fields


def finish(
    registry: Registry,
    record: JobRecord,
    state: JobState,
    fields: dict[str, Any] | None = None,
    *,
    reason: str | None = None,
    allowed: frozenset[JobState] = frozenset({JobState.RUNNING}),
    fenced: bool = True,
    effects: Effects | None = None,
    expired_by: float | None = None,
) -> JobState | None:
    """Move ``record`` to the finished ``state``, drop its lease and tell the plugins, in one round trip.

    Fenced on the record's delivery unless ``fenced`` is false, and with ``expired_by`` (a reaper's) on
    its lease having run out by then. ``effects`` are the caller's own writes to commit with it
    (Celery's result). The plugins get the final record (no re-read).
    Returns the state the job was in, or None if the change was refused (nothing written).
    """
    now = time.time()
    values = {**(fields or {}), "finished_at": now}
    final = record.model_copy(update={**values, "state": state})
    effects = effects or Effects()
    spans = []
    for plugin in _plugins:
        start = len(effects)
        try:
            plugin.finishing(final, effects)
        except Exception:  # its writes are dropped; the job's outcome is still recorded
            del effects.writes[start:]
            log.exception("plugin %s failed for job %s", type(plugin).__name__, record.id)
        spans.append((plugin, start, len(effects)))
    outcome = registry.finish(
        record.id,
        state,
        allowed=allowed,
        fence=record.fence if fenced else None,
        fields=values,
        event=JobEvent(state=state, at=now, attempt=record.attempt, worker=record.worker, reason=reason),
        effects=effects,
        expired_by=expired_by,
    )
    if outcome is None:
        return None
    previous, replies = outcome
    for plugin, start, end in spans:
        try:
            plugin.finished(final, replies[start:end])
        except Exception:  # a failing plugin never stops the others
            log.exception("plugin %s failed for job %s", type(plugin).__name__, record.id)
    return previous


def gate(record: JobRecord) -> send.Hold | None:
    """The plugins' gates for ``record`` (``Plugin.gate``) as one, in order: the first that holds it
    keeps it; None when no plugin has one: it is sent at once."""
    holds = [hold for plugin in _plugins if (hold := plugin.gate(record)) is not None]
    if len(holds) < 2:
        return holds[0] if holds else None
    return lambda queued: any(hold(queued) for hold in holds)


def sweep(registry: Registry) -> int:
    """Every plugin's sweep (the reaper's, each interval); returns how many things they handled."""
    handled = 0
    for plugin in _plugins:
        try:
            handled += plugin.sweep(registry)
        except Exception:  # the next round retries; the reaper must live on
            log.exception("sweep of %s failed", type(plugin).__name__)
    return handled


def fail_attempt(
    task: JobTask,
    registry: Registry,
    record: JobRecord,
    reason: str,
    tb: str | None,
    permanent: bool,
    request: Context | None = None,
    fields: dict[str, Any] | None = None,
) -> float | None:
    """Record a failed attempt (with the attempt's own ``fields``) and send the next one after its
    backoff; return that countdown, or None if the job ended (or moved meanwhile).

    ``request`` is the failed delivery when the handler's process fails it (the retry keeps its
    canvas options); None in the worker's main process (after a hard timeout).
    """
    policy = task.retry_policy(record)
    failures = record.failures + 1
    now = time.time()
    common = {**(fields or {}), "failures": failures, "error": reason, "traceback": tb}
    if not permanent and failures <= policy.max_retries:
        countdown = backoff_s(policy, failures)
        fence = record.fence + 1
        fields = {**common, "fence": fence, "attempt": record.attempt + 1, "next_attempt_at": now + countdown}
        lease_until = now + countdown + get_settings().lease_s
        move = _mover(registry, record, JobState.RETRYING, {JobState.RUNNING}, fields, reason, lease_until)
        return (
            countdown
            if send.resend(task, record, fence, move, countdown=countdown, request=request)
            else None
        )
    finish(registry, record, JobState.FAILED if permanent else JobState.DEAD, common, reason=reason)
    return None


def recover(
    task: JobTask,
    registry: Registry,
    record: JobRecord,
    reason: str,
    counted: bool = True,
    expired_by: float | None = None,
    request: Context | None = None,
) -> bool:
    """Re-queue a running job whose worker is gone; past the recovery cap, the job is dead.

    With ``expired_by`` (a reaper's), either only if the job's lease still ran out by then: a heartbeat
    that renewed it since the reaper read it keeps the attempt running, not run twice nor ended dead.
    With ``request`` (the lost delivery's), the next delivery keeps its canvas options (``send.resend``).
    Returns True if the job was re-queued or ended here, False if another process got there first.
    """
    recoveries = record.recoveries + (1 if counted else 0)
    if not recoverable(record, counted):
        reason = f"{reason}; worker lost {recoveries} times, giving up"
        fields = {"recoveries": recoveries, "error": reason}
        return (
            finish(registry, record, JobState.DEAD, fields, reason=reason, expired_by=expired_by) is not None
        )
    fields = {"recoveries": recoveries, "attempt": record.attempt + 1, "worker": None}
    return requeue(
        task,
        registry,
        record,
        allowed={JobState.RUNNING},
        reason=reason,
        fields=fields,
        expired_by=expired_by,
        request=request,
    )


def recoverable(record: JobRecord, counted: bool = True) -> bool:
    """Whether re-queueing ``record`` once more stays within the recovery cap (else it ends dead)."""
    return record.recoveries + (1 if counted else 0) <= get_settings().max_recoveries


def requeue(
    task: JobTask,
    registry: Registry,
    record: JobRecord,
    *,
    allowed: Iterable[JobState],
    reason: str,
    fields: dict[str, Any] | None = None,
    expired_by: float | None = None,
    request: Context | None = None,
) -> bool:
    """Move ``record`` back to ``queued`` on a new fence and send that delivery (from ``request``'s
    payload and canvas options when given, see ``send.resend``).

    Fenced on the record's delivery (and its lease, with ``expired_by``: see ``recover``); returns
    False (nothing sent) if another process moved it first.
    """
    fence = record.fence + 1
    fields = {**(fields or {}), "fence": fence}
    move = _mover(registry, record, JobState.QUEUED, allowed, fields, reason, 0, expired_by)
    return send.resend(task, record, fence, move, request=request)


def _mover(
    registry: Registry,
    record: JobRecord,
    to: JobState,
    allowed: Iterable[JobState],
    fields: dict[str, Any],
    reason: str,
    lease_until: float,
    expired_by: float | None = None,
) -> Callable[[Effects | None], bool]:
    """``record``'s fenced move to ``to`` that its next delivery is sent with (``send.resend``)."""

    def move(effects: Effects | None) -> bool:
        event = JobEvent(
            state=to, at=time.time(), attempt=record.attempt, worker=record.worker, reason=reason
        )
        moved = registry.transition(
            record.id,
            to,
            allowed=allowed,
            fence=record.fence,
            fields=fields,
            event=event,
            lease_until=lease_until,
            effects=effects,
            expired_by=expired_by,
        )
        return moved is not None

    return move


def cancel(registry: Registry, record: JobRecord, reason: str = "cancelled") -> JobState:
    """Cancel a waiting or running job (a running one is stopped by its heartbeat); the state it was in.

    Raises InvalidTransition for a finished job.
    """
    allowed = frozenset({*WAITING_STATES, JobState.RUNNING})
    previous = finish(registry, record, JobState.CANCELLED, reason=reason, allowed=allowed, fenced=False)
    if previous is None:
        raise InvalidTransition(
            f"job {record.id} is {registry.get(record.id).state.value}; "
            "only waiting or running jobs can be cancelled"
        )
    return previous


def retry(task: JobTask, registry: Registry, record: JobRecord, reason: str = "re-queued") -> None:
    """Re-queue a dead, failed, cancelled or blocked job with its payload, as a caller asks: a new
    attempt series (``_restart``). Raises InvalidTransition, nothing changed or sent, for a job that
    would leave its canvas (``canvas.retry_refusal``: a chord member, a blocked canvas step) or whose
    payload its type's model refuses (it would fail again at once).
    """
    payload, options = registry.kept_message(record)
    if (refusal := canvas.retry_refusal(task.app, record, options)) is not None:
        raise InvalidTransition(refusal)
    try:
        task.validate(payload)
    except PayloadError as exc:
        refusal = f"job {record.id} cannot run as it was sent: {exc}; submit a corrected job"
        raise InvalidTransition(refusal) from None
    _restart(task, registry, record, reason)


def _restart(
    task: JobTask, registry: Registry, record: JobRecord, reason: str, fields: dict[str, Any] | None = None
) -> None:
    """Re-queue a dead, failed, cancelled or blocked job with its payload: a new attempt series.

    A canvas member goes on with its canvas (its kept options). ``fields`` are ``record``'s own
    that the series replaces (``unblock``). Its finish gave back any place it held (a key's slot), so
    a job a plugin gates meets that gate again, as a new job does: it is sent now, or kept (parked)
    until its turn. Raises InvalidTransition for a job in any other state, BrokerUnavailable with the
    job left as it was.
    """
    reset = {**RETRY_RESET, **(fields or {})}
    record = record.model_copy(update=fields or {})
    hold = gate(record)
    if hold is None:
        moved = requeue(task, registry, record, allowed=RETRYABLE_STATES, reason=reason, fields=reset)
    else:
        moved = _requeue_gated(task, registry, record, hold, reason, reset)
    if not moved:  # named as it is now: another retry may have moved it since ``record`` was read
        raise InvalidTransition(
            f"job {record.id} is {registry.get(record.id).state.value}; "
            "only dead, failed, cancelled or blocked jobs can be retried"
        )


def unblock(
    task: JobTask,
    registry: Registry,
    blocked: JobRecord,
    step: JobRecord,
    message: dict[str, Any],
    options: dict[str, Any],
) -> None:
    """Send ``blocked``, a canvas step recorded blocked by an earlier step that was since retried and
    succeeded, as Celery's canvas sends it now: ``step`` is its record rebuilt from its parent's
    result, ``message`` its payload to send and ``options`` Celery's. Raises as ``_restart`` (its chain
    reports to no chord: the retry of the step that blocked it would have been refused).
    """
    kept = message if message != step.payload else None
    registry.keep(blocked.id, kept, canvas.kept_options(options))
    fields = {k: getattr(step, k) for k in _STEP_FIELDS}
    reason = f"its canvas went on: {options.get('parent_id') or 'its parent'} succeeded"
    _restart(task, registry, blocked, reason, fields)


def _requeue_gated(
    task: JobTask, registry: Registry, record: JobRecord, hold: send.Hold, reason: str, reset: dict[str, Any]
) -> bool:
    """``_restart`` through ``hold``: the record moves to ``queued`` first (no message), then meets the
    gate, and is sent only if the gate lets it go now. False if another process moved it first.

    A failed send puts the job back in the state it was in (its place given back by that finish).
    """
    fields = {**reset, "fence": record.fence + 1}
    if not _mover(registry, record, JobState.QUEUED, RETRYABLE_STATES, fields, reason, 0)(None):
        return False
    queued = registry.get(record.id)
    if hold(queued):
        return True
    try:
        send.send_recorded(task, queued)
    except BrokerUnavailable:
        kept = {k: getattr(record, k) for k in _KEPT_ON_UNSENT_RETRY}
        finish(
            registry,
            queued,
            record.state,
            kept,
            reason="re-queue not sent: the broker is away",
            allowed=frozenset({JobState.QUEUED}),
            fenced=False,
        )
        raise
    return True
