"""The task base class every job type uses: validate and send, then claim, run and record each delivery.

A job's Celery task id is its job id. Each message carries a *fence*: Celery's ``retries``
header, which trainq bumps on every re-delivery it makes (retry, recovery, manual retry).
A worker claims a delivery only if the registry still expects that fence, so a stale or
duplicated message (Redis visibility timeout, RabbitMQ requeue) is dropped, never run twice.
Every message is built and sent by ``trainq.job.send``, with the record's write. A first
delivery (fence 0) of a job with no record was sent by a client without trainq: the
worker records and claims it in one transaction (``trainq.job.clients``). Steps Celery's canvas
sends from a worker are recorded there, filled from the parent's result (``trainq.job.canvas``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
import traceback
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime
from functools import cache
from types import FrameType
from typing import Any, ClassVar, TypeGuard

import redis
from billiard.process import current_process
from celery import Task, states
from celery.app.task import Context
from celery.backends.redis import RedisBackend
from celery.exceptions import Ignore, Reject, Retry, SoftTimeLimitExceeded, TaskRevokedError
from celery.result import AsyncResult
from kombu.utils.json import JSONEncoder
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from trainq.broker.names import check_job_id, check_queue
from trainq.errors import (
    BrokerUnavailable,
    InvalidInput,
    JobFailed,
    JobStopped,
    PayloadError,
    PermanentError,
)
from trainq.inputs.documents import brief, text_problem
from trainq.inputs.limits import JOB_ID_MAX_CHARS, JOB_NAME_MAX_CHARS, MAX_ENV_NAME_CHARS
from trainq.inputs.tags import tags_problem
from trainq.inputs.text import check_printable, is_printable, nul_problem
from trainq.job import artifacts, canvas, claims, clients, environment, lifecycle, limit, payloads, send
from trainq.job.context import Job, capture_output
from trainq.job.leases import Heartbeat, within_lease
from trainq.job.record import UNSENT, WAITING_STATES, JobEvent, JobRecord, JobState
from trainq.job.retry import RetryPolicy, retries
from trainq.job.revocations import CANCELLED_REASON
from trainq.settings import get_settings
from trainq.sharing import fair as fairness
from trainq.sharing import gate
from trainq.store.registry import Effects, Registry, get_registry

log = logging.getLogger("trainq.job.task")

#: Options trainq reads from ``apply_async`` besides Celery's own.
JOB_OPTIONS = (
    "job_name",
    "tags",
    "key",
    "timeout",
    "hard_timeout",
    "retry",
    "environment",
    "result_files",
    "pipeline_id",
    "pipeline_job",
    "cwd",
    "parent_result",
    "limit",
)
#: Options stored in record fields of their own, not in ``record.options``.
_RECORD_FIELDS = ("key", "pipeline_id", "pipeline_job", "parent_result")

#: Fields of Celery's result meta its readers index (``meta["result"]``): written even when empty.
RESULT_META_KEPT = frozenset({"status", "result", "task_id"})

#: True while a handler runs: a job it sends is its own call (errors raise), not a canvas step.
_in_handler: ContextVar[bool] = ContextVar("trainq_in_handler", default=False)


class JobTask(Task):
    """Celery task for one job type: validates before sending, tracks every delivery."""

    job_type: ClassVar[str] = ""
    input_model: ClassVar[type[BaseModel]]
    output_model: ClassVar[type[BaseModel] | None] = None
    extra: ClassVar[payloads.Extra] = "forbid"
    policy: ClassVar[RetryPolicy | None] = None
    default_timeout: ClassVar[str | None] = None
    default_limit: ClassVar[dict[str, Any] | None] = None
    #: Jobs of this type start in turns between keys (``trainq.sharing.fair``).
    fair: ClassVar[bool] = False
    #: How a worker takes a delivery: Celery's, behind a screen (``trainq.ops.worker``).
    Strategy = "trainq.ops.worker:screened_strategy"
    #: A delivery in the worker's main process: Celery's, leaving invalid time limits to the job.
    Request = "trainq.ops.worker:JobRequest"
    handler: Callable[[Job, Any], Any]

    acks_late = True
    max_retries = None  # trainq's policy decides; Celery only re-publishes
    typing = False

    # -- caller side -------------------------------------------------------------------

    def validate(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload checked against the input model, as JSON for the message; raises PayloadError."""
        return self.payloads(payload)[0]

    def payloads(self, payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The validated payload as JSON twice: for the message (``SecretStr`` values revealed, the
        handler needs them) and for the registry (masked ``**********``). Raises PayloadError, also for
        text that is not Unicode: pydantic may take it, but no record holding it could be read back."""
        if unreadable := text_problem(payload):
            raise PayloadError(self.job_type, [unreadable])
        model = payloads.parse(self.input_model, payload, self.job_type, self.extra)
        extras = to_jsonable_python(model.model_extra or {})  # kept by a type that allows them
        message = to_jsonable_python(send.reveal_secrets(model.model_dump()))
        return {**message, **extras}, {**model.model_dump(mode="json"), **extras}

    def retry_policy(self, record: JobRecord | None = None) -> RetryPolicy:
        """The job's retry policy: its own override, else the type's, else the default."""
        base = self.policy or get_settings().retry
        override = (record.options.get("retry") if record else None) or {}
        return base.model_copy(
            update=RetryPolicy.model_validate({**base.model_dump(), **override}).model_dump()
        )

    def new_record(
        self, kwargs: Any, options: dict[str, Any], task_id: str | None = None
    ) -> tuple[JobRecord, dict[str, Any], str | None]:
        """Validate a new job and build its record, taking trainq's options out of ``options``.

        Returns the record, the payload for the message and the idempotency key; what is left in
        ``options`` is Celery's. Pipelines use it to record many jobs in one round trip.
        """
        job = {k: options.pop(k) for k in JOB_OPTIONS if k in options}
        if problem := text_problem(job) or tags_problem(job.get("tags")):
            raise InvalidInput(problem)
        name = job.pop("job_name", None)
        payload, stored = self.payloads(dict(kwargs or {}))
        priority = int(options.pop("priority", get_settings().default_priority))
        queue = options.pop("queue", None)
        queue = check_queue(self.queue or self.job_type if queue is None else queue)
        if self.default_timeout and "timeout" not in job:
            job["timeout"] = self.default_timeout
        if self.default_limit and "limit" not in job:
            job["limit"] = self.default_limit
        if "limit" in job:
            job["limit"] = limit.rendered(job["limit"], stored, job.get("tags") or {})
        send.time_limits(job)  # a bad duration raises here, before anything is written
        _check_paths_and_names(job)
        if "retry" in job:
            job["retry"] = RetryPolicy.model_validate(job["retry"]).model_dump(
                mode="json", exclude_unset=True
            )
        eta = send.due_at(options)
        now = time.time()
        if not (eta and eta > now) and (self.fair or fairness.is_fair_queue(queue)):
            job["limit"] = fairness.fair_limit(job.get("limit"), self.job_type)  # a delayed job takes no turn
        record = JobRecord(
            id=check_job_id(task_id) if task_id else uuid.uuid4().hex[:16],
            type=self.job_type,
            queue=queue,
            name=self.job_type if name is None else check_printable(name, "job name", JOB_NAME_MAX_CHARS),
            state=JobState.DELAYED if eta and eta > now else JobState.QUEUED,
            priority=priority,
            tags=job.pop("tags", None) or {},
            payload=stored,
            options={k: v for k, v in job.items() if k not in _RECORD_FIELDS},
            created_at=now,
            updated_at=now,
            eta=eta,
            attempt=1,
            pipeline_id=job.get("pipeline_id"),
            pipeline_job=job.get("pipeline_job"),
            parent_result=job.get("parent_result"),
        )
        return record, payload, job.get("key")

    def unsent_record(self, task_id: str, payload: Any, options: dict[str, Any]) -> JobRecord:
        """The record of a job that is never sent (refused, or after a failed chain step), to end at once.

        A name, queue or tags ``new_record`` would refuse are not kept (each may be as long as the
        message): the record shows the job type's instead, and no tags."""
        now, name, tags = time.time(), options.get("job_name"), options.get("tags") or {}
        return JobRecord(
            id=task_id,
            type=self.job_type,
            queue=_queue_or(options.get("queue"), self.queue or self.job_type),
            name=name if is_printable(name, JOB_NAME_MAX_CHARS) else self.job_type,
            state=JobState.QUEUED,
            priority=get_settings().default_priority,
            tags={} if tags_problem(tags) else tags,
            payload=payloads.masked(self.input_model, payload),
            created_at=now,
            updated_at=now,
            attempt=1,
            fence=UNSENT,
        )

    def apply_async(
        self, args: Any = None, kwargs: Any = None, task_id: str | None = None, **options: Any
    ) -> AsyncResult:
        """Validate, record and send a new job (``trainq.job.send``); the message's ``retries`` is its fence.

        Called by Celery's canvas in a worker (a chain step, link or chord callback), the one
        positional argument is the parent's result, and a job that cannot be built is recorded
        ``failed`` instead of raising into the parent (see ``send_step``). Called by Flower's task API
        where Flower may not send shell commands, the job is held to a client's rules
        (``client_options``): its canvas steps too, when a worker sends them.
        """
        origin = None if _in_handler.get() else canvas.origin(self.app)
        if origin is not None:
            return self.send_step(origin, args, kwargs, task_id or uuid.uuid4().hex[:16], options)
        if args:
            raise InvalidInput(f"job type {self.job_type!r} takes keyword arguments only")
        if clients.flower_refusal() is not None:  # Flower's task API, without command rights: a client's job
            options = self.client_options(options)
        return self.send_new(kwargs, task_id, options)

    def send_new(self, kwargs: Any, task_id: str | None, options: dict[str, Any]) -> AsyncResult:
        """Validate, record and send a new job; raises InvalidInput or BrokerUnavailable, nothing stored."""
        reason = options.pop("audit", None) or "submitted"  # who sent it, for the first event
        record, payload, key = self.new_record(kwargs, options, task_id)
        options.pop("retries", None)  # the fence is trainq's: a new job's first delivery is fence 0
        hold = gate.park_or_pass if gate.key_of(record) else None
        return send.send_new(self, record, payload, key, reason, options, hold)

    def send_step(
        self, origin: Context, args: Any, kwargs: Any, task_id: str, options: dict[str, Any]
    ) -> AsyncResult:
        """Send a job Celery's canvas asks for from a worker, filled from its parent's result.

        A dict result fills the input fields the caller left unset; the whole result is kept as
        the record's ``parent_result``. A step in the canvas of ``origin``, a delivery sent by a client
        without trainq (or descending from one), is that client's job (``client_options``). A step
        recorded ``blocked`` by an earlier one that has since been retried and succeeded is sent now
        (``lifecycle.unblock``): its chain goes on. A step that cannot be built or sent is recorded
        ``failed`` and its Celery result is FAILURE (its chain, chord and errbacks are told), so the
        parent, already recorded succeeded, stays SUCCESS in Celery too.
        """
        registry = get_registry()
        blocked = registry.find(task_id)
        if blocked is not None and blocked.state is not JobState.BLOCKED:
            return self.AsyncResult(task_id)  # a parent re-delivered re-sends its frozen steps
        kwargs = dict(kwargs or {}) if isinstance(kwargs, dict) else kwargs
        foreign = sent_by_client(registry, origin)
        if "priority" in options:  # the parent's broker priority, inherited
            options["priority"] = send.trainq_priority(options["priority"])
        try:
            if foreign:
                options = self.client_options(options)
            else:
                options["tags"] = {"source": canvas.CANVAS_SOURCE, **(options.get("tags") or {})}
            filled = canvas.step_payload(self.input_model, self.job_type, args, kwargs)
            parent = args[0] if args else None
            if blocked is None:
                return self.send_new(filled, task_id, {**options, "parent_result": parent})
            step, message, _ = self.new_record(filled, {**options, "parent_result": parent}, task_id)
            lifecycle.unblock(self, registry, blocked, step, message, options)
            return self.AsyncResult(task_id)
        except (InvalidInput, ValidationError, BrokerUnavailable) as exc:
            reason = str(exc)
        log.warning("canvas step %s[%s] refused: %s", self.name, task_id, reason)
        if foreign:
            options["tags"] = {"source": clients.FOREIGN_SOURCE}
        if blocked is None:
            self.record_unsent(task_id, kwargs, options, JobState.FAILED, reason)
        else:
            fields, blocked_only = {"error": reason}, frozenset({JobState.BLOCKED})
            was = lifecycle.finish(
                registry, blocked, JobState.FAILED, fields, reason=reason, allowed=blocked_only
            )
            if was is None:
                return self.AsyncResult(task_id)  # sent meanwhile, by another delivery of its parent
        request = canvas.failure_request(task_id, self.name, args, kwargs, options)
        self.backend.mark_as_failure(task_id, InvalidInput(reason), request=request)
        self.block_after(options.get("chain"), options.get("chord"), task_id, "failed")
        return self.AsyncResult(task_id)

    def client_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Celery ``options`` of a job a client without trainq sent through trainq (a canvas step it
        carried, Flower's task API), held to the rules of its direct send (``_record_foreign``):
        trainq's options, by name or in the ``trainq`` header, checked as that header's and tagged
        as a client's; time limits positive; this type's ``client_refusal``. Raises InvalidInput."""
        header = clients.header_options(options.get("headers"))
        named = {k: v for k, v in options.items() if k in JOB_OPTIONS}
        given = clients.checked_options(named, "trainq options")
        limits = [options.get("time_limit"), options.get("soft_time_limit")]
        if problem := clients.time_limit_problem(limits):
            raise InvalidInput(problem)
        if refusal := self.client_refusal():
            raise InvalidInput(refusal)
        celery = {k: v for k, v in options.items() if k not in JOB_OPTIONS}
        return {**celery, **header, **given, "tags": {**header["tags"], **given["tags"]}}

    def record_unsent(
        self, task_id: str, payload: Any, options: dict[str, Any], state: JobState, reason: str
    ) -> None:
        """Record a job that is never sent (refused, or after a failed chain step) as ended in ``state``."""
        registry = get_registry()
        record = self.unsent_record(task_id, payload, options)
        if not registry.create_many([record]):
            return  # recorded meanwhile (two members of one chord failed at once): that record stands
        lifecycle.finish(registry, record, state, {"error": reason}, reason=reason, allowed=WAITING_STATES)

    def block_after(self, chain: Any, chord: Any, step_id: str, outcome: str) -> None:
        """Record ``blocked`` by ``step_id``, which ended ``outcome`` (failed, was cancelled), the job
        type steps Celery will not send: the rest of its ``chain``, and the callback of the chord it
        reports to (its ``chord``, or a later chain step's) with the steps after that. A step blocked
        already, by an earlier step since retried, now names this one."""
        registry = get_registry()
        callback = canvas.reported_chord(self.app, chain, chord)
        for steps, kind in (
            (canvas.chain_steps(self.app, chain), canvas.CHAIN_STEP),
            (canvas.chord_steps(self.app, callback), canvas.CHORD_MEMBER),
        ):
            reason = canvas.blocked_reason(kind, outcome, step_id)
            for task, task_id, kwargs, options in steps:
                current = registry.find(task_id)
                if current is None:
                    task.record_unsent(task_id, kwargs, options, JobState.BLOCKED, reason)
                elif current.state is JobState.BLOCKED and current.error != reason:
                    self._reblock(registry, task_id, reason)

    @staticmethod
    def _reblock(registry: Registry, job_id: str, reason: str) -> None:
        """Name ``reason`` as what blocks ``job_id`` now (no state change, nothing counted twice)."""
        blocked = JobState.BLOCKED
        event = JobEvent(state=blocked, at=time.time(), reason=reason)
        registry.transition(job_id, blocked, allowed={blocked}, fields={"error": reason}, event=event)

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Celery's hook after a job ended failed: the canvas steps it will not send are recorded too."""
        self.block_after(self.request.chain, self.request.chord, task_id, "failed")

    # -- worker side -------------------------------------------------------------------

    def execute(self, *args: Any, **payload: Any) -> Any:
        """Claim this delivery, run the handler, and record the outcome."""
        registry = get_registry()
        settings = get_settings()
        job_id, fence = self.request.id, self.request.retries or 0
        lease_until = time.time() + settings.lease_s
        worker, fresh_s = self.request.hostname, settings.heartbeat_s
        record = claims.claimed(self.request, registry, lease_until, fresh_s) or claims.claim_here(
            registry, job_id, fence, worker, settings.lease_s, fresh_s
        )
        if record is None and fence == 0 and not getattr(self.request, send.SENT_HEADER, None):
            record = self._record_foreign(registry, args, payload, lease_until)
        if record is None:
            current = registry.find(job_id)
            state = current.state.value if current else "no record left: removed after it ended"
            log.info("dropping stale delivery %s[%s] (fence %s, job %s)", self.name, job_id, fence, state)
            self.revoke_if_cancelled(current)
            raise Ignore()
        job = Job(record, registry, self, settings.home, list(settings.secrets))
        stoppable = _stop_on_sigterm(True)
        heartbeat = Heartbeat(registry, record, settings.lease_s, settings.heartbeat_s, stoppable=stoppable)
        heartbeat.start()
        try:
            try:
                # Inside the try: an unset variable fails the job (permanently) before the handler starts.
                variables: dict[str, str] = {}
                if wanted := record.options.get("environment"):
                    variables, secrets = environment.expand(wanted, worker=self.request.hostname)
                    job.secrets = sorted({*secrets, *job.secrets}, key=len, reverse=True)
                with capture_output(job), environment.applied(variables):
                    result = self.run_handler(job, payload)
                    if self.output_model is not None:
                        result = self.output_model.model_validate(result)
                    if isinstance(result, BaseModel):
                        result = result.model_dump(mode="json")
                    result = environment.masked(result, job.secrets)
                    fields = {"result": result, **lifecycle.succeeding(record), **job.outcome_fields}
            finally:
                # Before the outcome is recorded: a renewal refused because this process itself
                # ended the job must not look like a cancel and stop the finish midway.
                heartbeat.stop()
            effects = self._result_effects(result)
            try:
                finished = within_lease(
                    lambda: lifecycle.finish(registry, record, JobState.SUCCEEDED, fields, effects=effects),
                    settings.lease_s,
                )
            except (redis.RedisError, BrokerUnavailable):  # not the work's failure: its lease runs out
                log.warning("job %s: its success could not be recorded within its lease", record.id)
                raise _Unrecorded() from None
            if finished is None and not _moved_here(registry.find(record.id), record, JobState.SUCCEEDED):
                log.info("job %s finished but was cancelled or recovered meanwhile", record.id)
                self.revoke_if_cancelled(registry.find(record.id))
                raise _Unrecorded()
            if len(effects):
                self.request.ignore_result = True  # stored with the finish: Celery skips its own store
            return result
        except _Unrecorded:
            raise
        except JobStopped:
            self._stopped(registry, record)
            raise Ignore() from None
        except Exception as exc:
            permanent = isinstance(exc, (PermanentError, ValidationError, InvalidInput)) or not retries(
                self.retry_policy(record), exc
            )
            reason, tb = (environment.mask(t, job.secrets) for t in (_reason(exc), traceback.format_exc()))
            countdown = within_lease(
                lambda: lifecycle.fail_attempt(
                    self, registry, record, reason, tb, permanent, self.request, job.outcome_fields
                ),
                settings.lease_s,
            )
            current = registry.find(record.id) if countdown is None else None
            if _moved_here(current, record, JobState.RETRYING):
                countdown = max((current.next_attempt_at or 0) - time.time(), 0)
            elif countdown is None and self.revoke_if_cancelled(current):
                raise Ignore() from None  # cancelled mid-attempt: REVOKED, as Celery ends a revoked task
            shown = exc if reason == _reason(exc) else JobFailed(reason)  # Celery stores what is raised
            if countdown is not None:
                raise Retry(exc=shown, when=countdown) from None  # the retry is sent: Celery records it
            if shown is exc:
                raise
            raise shown from None
        finally:
            _stop_on_sigterm(False)

    def _result_effects(self, result: Any) -> Effects:
        """Celery's SUCCESS result for this delivery as writes to commit with the finish, stored as
        Celery's Redis backend stores it (key, expiry, PUBLISH to waiting clients), less its empty fields.

        No writes when Celery keeps its own store: a backend other than the registry's Redis, or a
        delivery with canvas callbacks (their ids go into the result's ``children`` after the task).
        """
        effects = Effects()
        request, backend = self.request, self.backend
        if not isinstance(backend, RedisBackend) or get_settings().backend() != get_settings().registry():
            return effects
        if request.callbacks or request.chain or request.chord or request.ignore_result:
            return effects
        meta = _success_meta(backend, request, result)
        key, value = backend.get_key_for_task(request.id).decode(), _compact_meta(backend, meta)
        expires = backend.expires
        effects.command("SET", key, value, *(("EX", int(expires)) if expires else ()))
        effects.command("PUBLISH", key, value)
        return effects

    def run_handler(self, job: Job, payload: dict[str, Any]) -> Any:
        """The handler's result for ``payload``, checked strictly; a job the handler sends is its own call."""
        config = payloads.parse(self.input_model, payload, self.job_type, self.extra)
        handling = _in_handler.set(True)
        try:
            return self.handler(job, config)
        finally:
            _in_handler.reset(handling)

    def client_refusal(self) -> str | None:
        """Why a job of this type may not come from a client without trainq's record; None if it may."""
        return None

    def _record_foreign(
        self, registry: Registry, args: tuple[Any, ...], payload: dict[str, Any], lease_until: float
    ) -> JobRecord | None:
        """Record and claim a first delivery with no record: a job sent by a client without trainq.

        Its queue, priority and eta come from the message, trainq's options from its ``trainq``
        header (``clients.ClientOptions``). None if the job has a record after all
        (a stale or duplicate delivery). An invalid one is recorded ``failed`` and InvalidInput
        raised, so Celery's result is FAILURE with the same message.
        """
        info = self.request.delivery_info or {}
        options: dict[str, Any] = {
            "tags": {"source": clients.FOREIGN_SOURCE},
            "queue": info.get("routing_key") or None,
            "priority": send.trainq_priority(info.get("priority")),
            "eta": self.request.eta,
        }
        if len(self.request.id) > JOB_ID_MAX_CHARS:  # it names the record's keys: none is written
            raise InvalidInput(
                f"invalid job id: it is {len(self.request.id):,} characters; at most {JOB_ID_MAX_CHARS}"
            )
        reason = message = None
        try:
            options.update(clients.header_options(self.request.headers))
            if problem := clients.time_limit_problem(self.request.timelimit):
                raise InvalidInput(problem)
            if refusal := self.client_refusal():
                raise InvalidInput(refusal)
            if args:
                raise InvalidInput(f"job type {self.job_type!r} takes keyword arguments only")
            record, message, _ = self.new_record(payload, dict(options), self.request.id)
        except (InvalidInput, ValidationError) as exc:  # a bad payload, or a bad option (retry policy)
            record, reason = self.unsent_record(self.request.id, payload, options), str(exc)
        kept = message if message is not None and message != record.payload else None
        members = canvas.kept_options(self.request.as_execution_options())
        creating = registry.create_and_claim(record, self.request.hostname, lease_until, kept, members)
        try:
            claimed = within_lease(creating, get_settings().lease_s)
        except (redis.RedisError, BrokerUnavailable) as exc:  # its message is the job's only copy: kept
            raise Reject(f"job {record.id} could not be recorded: {exc}", requeue=True) from exc
        if claimed is None or reason is None:
            if claimed is not None:
                log.info("recorded job %s sent by a Celery client", claimed.id)
            return claimed
        lifecycle.finish(registry, claimed, JobState.FAILED, {"failures": 1, "error": reason}, reason=reason)
        raise InvalidInput(reason)

    def _stopped(self, registry: Registry, record: JobRecord) -> None:
        """The process was told to stop: a cancel (already recorded) or a worker shutdown."""
        current = registry.find(record.id)
        if current and current.state is JobState.RUNNING and current.fence == record.fence:
            lifecycle.recover(self, registry, current, reason="worker shut down mid-job", counted=False)
        else:
            self.revoke_if_cancelled(current)

    def revoke_if_cancelled(self, current: JobRecord | None) -> bool:
        """End this delivery as Celery ends a revoked task if ``current``, the job's record, was cancelled
        on it: REVOKED, told to its chord and to the chain steps after it (recorded ``blocked``), and a
        ``task-revoked`` event for monitors (Flower). The canceller stored the job's own REVOKED already
        (``trainq.job.revocations``); only here is the message's canvas known. True if it was."""
        request = self.request
        if (
            current is None
            or current.state is not JobState.CANCELLED
            or current.fence != (request.retries or 0)
        ):
            return False
        self.block_after(request.chain, request.chord, request.id, "was cancelled")
        exc = TaskRevokedError(current.error or CANCELLED_REASON)
        # Celery's mark_as_revoked tells the chord but leaves the chain's later steps PENDING forever
        self.backend.mark_as_failure(
            request.id, exc, request=request, state=states.REVOKED, call_errbacks=False
        )
        try:
            self.send_event("task-revoked", retry=False, terminated=False, signum=None, expired=False)
        except send.SEND_ERRORS as error:
            log.warning("could not send task-revoked for job %s: %s", request.id, error)
        return True


class _Unrecorded(Ignore):
    """Raised once the work succeeded when its success is not recorded here: the job was cancelled or
    recovered meanwhile, or the registry did not answer within the lease. Not a failure of the work."""


def _moved_here(current: JobRecord | None, record: JobRecord, state: JobState) -> TypeGuard[JobRecord]:
    """True if ``current`` is ``record`` moved to ``state`` by this attempt's own outcome: a try that
    landed while its answer was lost (``within_lease``), whose next try was refused for it."""
    fence = record.fence + 1 if state is JobState.RETRYING else record.fence
    return current is not None and current.state is state and current.fence == fence


def sent_by_client(registry: Registry, origin: Context) -> bool:
    """True if ``origin``, the delivery whose canvas sends a step, is a job of a client without trainq
    (its own or inherited down its canvas: its record is tagged so) or has no record (trainq records
    every job it sends before sending it), so its steps are held to that client's rules."""
    record = registry.find(origin.id)
    return record is None or record.tags.get("source") == clients.FOREIGN_SOURCE


def _queue_or(queue: Any, default: str) -> str:
    """``queue`` if it is a valid queue name, else ``default``."""
    try:
        return check_queue(queue)
    except InvalidInput:
        return default


def _check_paths_and_names(job: dict[str, Any]) -> None:
    """Raise InvalidInput for an environment name, ``result_files`` entry or ``cwd`` a pipeline may not give.

    Python callers and Celery clients (the ``trainq`` header) reach here without a pipeline file's checks.
    """
    variables = job.get("environment") or {}
    if not isinstance(variables, dict):
        raise InvalidInput(f"environment must be a mapping of names to strings, got {brief(variables)}")
    for name in variables:
        if len(name) > MAX_ENV_NAME_CHARS or not environment.NAME.fullmatch(name):
            raise InvalidInput(f"environment name {brief(name)} is invalid: {environment.NAME_RULE}")
    if problems := [
        f"environment.{n}: {p}" for n, v in variables.items() if (p := environment.value_problem(v))
    ]:
        raise InvalidInput("; ".join(problems))
    for entry in job.get("result_files") or []:
        if problem := artifacts.pattern_problem(artifacts.entry_pattern(entry)[0]):
            raise InvalidInput(f"result_files: {problem}")
    if isinstance(cwd := job.get("cwd"), str) and (problem := nul_problem(cwd)):
        raise InvalidInput(f"cwd: {problem}")


def _success_meta(backend: RedisBackend, request: Any, result: Any) -> dict[str, Any]:
    """Celery's result meta of ``request``'s success, as its backend makes it.

    Made here when Celery would add nothing else (no extended results, no children): the backend's
    own ``_get_result_meta`` reads its settings and clock in ways that cost ~30 µs a job.
    """
    if _extended_results(backend.app) or request.children:
        meta = backend._get_result_meta(result=result, state=states.SUCCESS, traceback=None, request=request)
    else:
        meta = {
            "status": states.SUCCESS,
            "result": result,
            "date_done": datetime.now(backend.app.timezone).isoformat(),
            "group_id": request.group,  # None (dropped when stored) unless Celery's canvas set it
            "parent_id": request.parent_id,
        }
    return {**meta, "task_id": request.id}


@cache
def _extended_results(app: Any) -> bool:
    """Celery's ``result_extended``, read once per process (a worker's settings do not change)."""
    return bool(app.conf.find_value_for_key("extended", "result"))


def _compact_meta(backend: RedisBackend, meta: dict[str, Any]) -> str:
    """Celery's result ``meta`` encoded without its empty fields (its readers, AsyncResult and Flower,
    read a missing traceback or children as None) and, in JSON, without blanks after separators."""
    kept = {k: v for k, v in meta.items() if k in RESULT_META_KEPT or v not in (None, [])}
    if backend.serializer == "json":
        return json.dumps(kept, cls=JSONEncoder, separators=(",", ":"))
    return str(backend.encode(kept))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SoftTimeLimitExceeded):
        return "timed out (soft time limit)"
    return f"{type(exc).__name__}: {exc}"


#: The pool process whose SIGTERM handler is ``_on_sigterm``.
_sigterm_pid: int | None = None
#: A job runs in this process now (SIGTERM stops it).
_job_running = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """A cancel or cold shutdown stops the running job (JobStopped); between jobs, the process ends."""
    if _job_running:
        raise JobStopped()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _stop_on_sigterm(running: bool) -> bool:
    """In a prefork child, mark whether a job runs, so SIGTERM raises JobStopped in it; False elsewhere.

    The handler is installed once per process: two ``signal.signal`` calls per job cost ~30 µs of
    its start.
    """
    global _sigterm_pid, _job_running
    if _sigterm_pid != os.getpid():
        if not current_process().name.startswith("ForkPoolWorker"):
            return False
        signal.signal(signal.SIGTERM, _on_sigterm)
        _sigterm_pid = os.getpid()
    _job_running = running
    return True
