"""What runs inside a worker process besides tasks: the lease reaper, the sharing admission
ticker (``trainq.sharing.ticker``), paused queues, recording failures that happen outside the
handler (hard timeouts, a pool process lost), Celery's revoke (``celery control revoke``, Flower)
recorded as a cancel, and messages Celery refuses set aside (``trainq.broker.quarantine``).
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis
from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import Terminated
from celery import signals
from celery.exceptions import InvalidTaskError, TimeLimitExceeded, WorkerLostError
from celery.worker import control as remote_control
from celery.worker.request import Request
from celery.worker.state import task_ready
from celery.worker.strategy import default as default_strategy
from kombu.transport import redis as kombu_redis

from trainq.broker import priorities, transport
from trainq.broker.names import check_queue
from trainq.broker.quarantine import envelope_bytes, get_quarantine
from trainq.errors import BrokerUnavailable, InvalidInput, InvalidName
from trainq.inputs.documents import nesting_problem
from trainq.inputs.durations import format_duration
from trainq.job import canvas, claims, clients, guard, lifecycle, send
from trainq.job.lifecycle import fail_attempt, recover, recoverable, requeue
from trainq.job.record import UNSENT, WAITING_STATES, JobRecord, JobState
from trainq.job.task import JobTask
from trainq.job.types import task_name
from trainq.ops import control
from trainq.settings import get_settings, redacted
from trainq.sharing.gate import key_of, park_or_pass
from trainq.sharing.ticker import Ticker
from trainq.store.registry import Registry, get_registry
from trainq.store.sharing import get_sharing

log = logging.getLogger("trainq.ops.worker")


def worker_command(
    queues: Sequence[str],
    *,
    name: str | None = None,
    concurrency: int | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``celery worker`` command line for a pool on ``queues`` with their pool settings.

    Events are on (``-E``) so Flower sees the jobs; the node is ``<name or queues>@<host>``.
    """
    for queue in queues:
        check_queue(queue)
    pool = get_settings().pool(queues[0])
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "trainq",
        "worker",
        "-Q",
        ",".join(queues),
        "-n",
        f"{name or '+'.join(queues)}@%h",
        "-c",
        str(concurrency or pool.concurrency),
        "--prefetch-multiplier",
        str(pool.prefetch),
        "-E",
        "-l",
        "info",
        *extra,
    ]


#: The most queued jobs of one queue a reaper's round looks at for a lost message (newest first).
LOST_SCAN_MAX = 2000


class Reaper(threading.Thread):
    """Re-queues jobs whose lease expired (worker gone) or whose retry is overdue, among other sweeps."""

    def __init__(
        self,
        app: Any,
        registry: Registry,
        interval_s: float,
        queues: Sequence[str] = (),
        hostname: str | None = None,
    ) -> None:
        super().__init__(name="trainq-reaper", daemon=True)
        self.app = app
        self.registry = registry
        self.interval_s = interval_s
        self.queues = queues  # the queues its worker was started for, paused ones included
        self.hostname = hostname
        self.stopped = threading.Event()
        self._lost_check_at = 0.0

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            for sweep in self.sweeps:
                try:
                    sweep()
                except (redis.RedisError, BrokerUnavailable) as exc:  # an outage: the next round retries
                    log.warning("sweep %s failed: %s", sweep.__name__, exc)
                except Exception:  # the thread must live on
                    log.exception("sweep %s failed", sweep.__name__)

    def sweep(self) -> int:
        """Handle every expired lease once; return how many jobs were re-queued or ended."""
        handled = self.resend_queued() if self.registry.master_changed() else 0
        now = time.time()
        for job_id in self.registry.expired_leases(now):
            record = self.registry.find(job_id)
            task = self.app.tasks.get(task_name(record.type)) if record else None
            if record is None or record.state not in (JobState.RUNNING, JobState.RETRYING, JobState.DELAYED):
                self.registry.drop_lease(job_id)
            elif isinstance(task, JobTask):
                if record.state is JobState.RUNNING:
                    reason = f"lease expired: no heartbeat from {record.worker}"
                    handled += recover(task, self.registry, record, reason, expired_by=now)
                else:
                    handled += redeliver_overdue(task, self.registry, record)
        return handled

    def resend_queued(self) -> int:
        """After a Redis master change, send every queued job again on a new fence.

        Messages written to the old master just before it died may not have reached the replica that
        took over; a queued job's record did (``TRAINQ_MIN_REPLICAS``). A copy that did survive is now
        stale and its worker drops it, so each job still runs once.
        """
        sent = 0
        for page in self.registry.pages_of_state(JobState.QUEUED):
            for record in self.registry.get_many(page):
                task = self.app.tasks.get(task_name(record.type))
                if isinstance(task, JobTask):
                    sent += requeue(
                        task,
                        self.registry,
                        record,
                        allowed={JobState.QUEUED},
                        reason="re-sent after a Redis master change",
                    )
        log.warning("Redis master changed: re-sent %d queued jobs", sent)
        return sent

    def resend_lost(self) -> int:
        """Send again each queued job whose message a Redis broker lost: untouched for
        ``TRAINQ_LOST_MESSAGE_S``, its queue empty and no worker holding a delivery of it. A worker's
        main process killed as Redis handed it the message (kombu's window), a broker restarted without
        its data, a record written to its own Redis whose send never happened: the new delivery's fence
        makes any copy that turns up after all stale. A keyed job meets its key first (``ungated``), and a
        job recorded only to be ended (``UNSENT``) is never sent."""
        lost_after, now = get_settings().lost_message_s, time.time()
        if now < self._lost_check_at:
            return 0
        self._lost_check_at = now + lost_after / 10
        queues = [
            q for q, counts in self.registry.queue_counts().items() if counts.get(JobState.QUEUED.value)
        ]
        empty = [q for q, depth in control.queue_depths(queues).items() if not depth]  # a message waits else
        stale = (r for q in empty for r in self.registry.queued_since(q, now - lost_after, LOST_SCAN_MAX))
        waiting = [r for r in stale if r.fence != UNSENT]
        sent = 0
        for record in ungated(control.without_message(waiting)):
            task = self.app.tasks.get(task_name(record.type))
            if isinstance(task, JobTask):
                reason = f"re-sent: no message of it in the broker for {format_duration(lost_after)}"
                sent += requeue(task, self.registry, record, allowed={JobState.QUEUED}, reason=reason)
        if sent:
            log.warning("re-sent %d queued jobs whose message the broker no longer held", sent)
        return sent

    @property
    def sweeps(self) -> tuple[Callable[[], int], ...]:
        """What each round does, in order."""
        return (
            self.register,
            self.sweep,
            self.adopt_foreign,
            self.resend_lost,
            self.expire,
            self.sweep_plugins,
        )

    def register(self) -> int:
        """Record again the queues this worker was started for if the record is gone (Redis lost its
        data): ``trainq resume`` gives a queue back to the workers recorded for it."""
        if self.hostname is None:
            return 0
        return int(self.registry.register_worker(self.hostname, self.queues, keep=True))

    def adopt_foreign(self) -> int:
        """Move into this worker's queues the messages a plain Celery client put in the lists of
        Celery's default Redis priority options, which no worker reads (``trainq.broker.priorities``)."""
        with self.app.pool.acquire(block=True) as connection:
            channel = connection.default_channel
            if not isinstance(channel, kombu_redis.Channel) or channel.global_keyprefix:
                return 0
            moved = priorities.adopt(channel.client, self.queues, channel.sep)
        if moved:
            log.info("took %d messages sent with Celery's default priority options into their queues", moved)
        return moved

    def sweep_plugins(self) -> int:
        """Each lifecycle plugin's sweep (e.g. pipeline repairs and expiry)."""
        return lifecycle.sweep(self.registry)

    def expire(self) -> int:
        """Drop finished records past their retention, a bounded batch per state per round."""
        settings = get_settings()
        dropped = self.registry.expire(settings.retention, time.time(), settings.retention_batch)
        if dropped:
            log.info("retention: dropped %d finished job records", dropped)
        return dropped


def ungated(records: list[JobRecord]) -> list[JobRecord]:
    """Of these queued jobs without a message, those their key lets go now: each keyless one, each
    holding a slot of its key; a parked one waits (it has no message by design), and one that never
    met its key (its submit was answered too late) meets it now: parked, or let go with a slot."""
    keys = sorted({key for r in records if (key := key_of(r)) is not None})
    holders = get_sharing().holders_of(keys) if keys else {}
    return [
        r
        for r in records
        if (key := key_of(r)) is None
        or r.id in holders[key][0]
        or (r.id not in holders[key][1] and not park_or_pass(r))
    ]


def redeliver_overdue(task: JobTask, registry: Registry, record: JobRecord) -> bool:
    """Send a fresh delivery for a retry or a delayed job a lease past its time, whose message never
    arrived (its holder died: kombu would give it back only after its visibility timeout)."""
    what = "retry" if record.state is JobState.RETRYING else "delayed job"
    return requeue(task, registry, record, allowed={record.state}, reason=f"{what} overdue; re-sent")


#: Seconds between a starting worker's tries to reach its registry.
REACH_RETRY_S = 2.0


def wait_for_registry(conf: Any, registry: Registry) -> None:
    """Return once the registry answers, so a worker started before its Redis waits for it with one
    line naming it (password masked), not a traceback per startup step; with Celery's retries on
    startup off, or ``broker_connection_max_retries`` spent, exit 3 as the CLI does when unreachable."""
    settings = get_settings()
    url = settings.registry()
    role = "broker" if url == settings.broker() else "registry"
    retry = conf.broker_connection_retry_on_startup
    retry = conf.broker_connection_retry if retry is None else retry
    for tries in itertools.count(1):
        try:
            registry.ping(role, url)
        except BrokerUnavailable as exc:
            spent = conf.broker_connection_max_retries and tries > conf.broker_connection_max_retries
            if not retry or spent:
                log.error("%s", exc)
                raise SystemExit(3) from None
            if tries == 1:
                log.error("%s Retrying every %gs until it answers.", exc, REACH_RETRY_S)
            time.sleep(REACH_RETRY_S)
        else:
            if tries > 1:
                log.info("reached the %s at %s", role, redacted(url))
            return


_reaper: Reaper | None = None
_ticker: Ticker | None = None
#: The queues this worker was started for, paused ones included (``_skip_paused_queues``).
_started_for: list[str] = []


@signals.celeryd_after_setup.connect
def _skip_paused_queues(sender: str, instance: Any, **_: Any) -> None:
    """Refuse reserved queue names; record the worker's queues; skip the paused ones."""
    queues = set(instance.app.amqp.queues.consume_from or {})
    for queue in sorted(queues):
        try:
            check_queue(queue)
        except InvalidName as exc:
            log.error("refusing to start: %s", exc)
            raise SystemExit(2) from None  # bad input, as the CLI exits for it
    registry = get_registry()
    wait_for_registry(instance.app.conf, registry)  # the first receiver here to use it
    _started_for[:] = sorted(queues)
    registry.register_worker(sender, queues)
    paused = registry.paused_queues() & queues
    if paused:
        log.info("not consuming paused queues: %s", ", ".join(sorted(paused)))
        instance.app.amqp.queues.deselect(paused)


@signals.celeryd_after_setup.connect
def _warn_of_an_inline_pool(sender: str, instance: Any, **_: Any) -> None:
    """Say what a pool that runs jobs without a process of their own cannot do (solo, threads, gevent,
    eventlet): time limits and stopping a running job need the prefork pool's processes."""
    pool = getattr(instance.pool_cls, "__module__", str(instance.pool_cls)).rpartition(".")[2]
    if pool != "prefork":
        log.warning(
            "pool %s: a job's timeout is not enforced and a cancel cannot stop a running job "
            "(its command runs on); use the default prefork pool where those matter",
            pool,
        )


@signals.celeryd_after_setup.connect
def _claim_in_main_process(sender: str, instance: Any, **_: Any) -> None:
    """Claim deliveries with their unacked entry (``trainq.job.claims``) where a delivery runs at once
    and the broker is the registry's Redis."""
    options = instance.app.conf.broker_transport_options or {}
    if send.same_redis() and instance.prefetch_multiplier == 1 and not options.get("global_keyprefix"):
        claims.claim_in_main_process(sender, lambda name: _runs_at_once(instance.app.tasks.get(name)))


def _runs_at_once(task: Any) -> bool:
    """True for a job type Celery hands to a free pool process as soon as it arrives (no rate limit)."""
    return isinstance(task, JobTask) and not task.rate_limit


@signals.worker_ready.connect
def _start_threads(sender: Any, **_: Any) -> None:
    global _reaper, _ticker
    _reaper = Reaper(
        sender.app, get_registry(), get_settings().reaper_interval_s, _started_for, sender.hostname
    )
    _reaper.start()
    queues = sender.app.amqp.queues  # a pause or a resume changes what it consumes from
    processes = sender.controller.concurrency
    _ticker = Ticker(sender.hostname, lambda: sorted(queues.consume_from or {}), processes)
    _ticker.start()


@signals.worker_shutting_down.connect
def _stop_threads(**_: Any) -> None:
    if _reaper is not None:
        _reaper.stopped.set()
    if _ticker is not None:
        _ticker.stop()


@signals.task_failure.connect
def _record_outside_failure(sender: Any, task_id: str, exception: BaseException, **_: Any) -> None:
    """Failures the handler never saw: a hard time limit, or its pool process died."""
    if not isinstance(sender, JobTask) or not isinstance(exception, (TimeLimitExceeded, WorkerLostError)):
        return
    registry = get_registry()
    record = registry.find(task_id)
    if record is None or record.state is not JobState.RUNNING:
        return
    if isinstance(exception, WorkerLostError):
        recover(sender, registry, record, reason=f"pool process lost: {exception}")
        return
    reason = f"timed out (hard time limit {exception})"
    fail_attempt(sender, registry, record, reason, None, permanent=False)


def cancel_revoked(job_ids: Iterable[str], reason: str) -> None:
    """Record each waiting or running job among ``job_ids`` cancelled, as ``trainq cancel`` does, so
    Celery's result is REVOKED (``trainq.job.revocations``; Celery itself stores that only for a job it
    terminates or drops).

    A running job's heartbeat then sees the cancel and stops its handler. Ids of finished jobs
    and of tasks that are not trainq jobs are skipped.
    """
    for job_id in job_ids:
        try:
            control.cancel(job_id, reason=reason)
        except InvalidInput:  # not a trainq job, or already finished
            pass
        except redis.RedisError as exc:  # Celery's own revoke must still happen
            log.warning("could not record job %s as %s: %s", job_id, reason, exc)


_celery_revoke = remote_control.Panel.data["revoke"]


@remote_control.control_command(variadic="task_id", signature="[id1 [id2 [... [idN]]]]")
def revoke(
    state: Any, task_id: Any, terminate: bool = False, signal: str | None = None, **kwargs: Any
) -> Any:
    """Revoke jobs by id: trainq records them cancelled first, then Celery revokes (and terminates) them.

    Recording first means the SIGTERM of ``terminate`` meets a cancelled job (stopped, not re-queued).
    """
    job_ids = [task_id] if isinstance(task_id, str) else list(task_id or [])
    cancel_revoked(job_ids, "revoked" + (" with terminate" if terminate else ""))
    return _celery_revoke(state, task_id, terminate, signal, **kwargs)


@signals.task_revoked.connect
def _record_discarded(sender: Any, request: Any, expired: bool = False, **_: Any) -> None:
    """A job the worker discarded unstarted (expired, or revoked while it was down) ends cancelled."""
    if isinstance(sender, JobTask):
        cancel_revoked([request.id], "expired before it started" if expired else "revoked")


@signals.task_unknown.connect
def _quarantine_unknown(sender: Any, message: Any, exc: BaseException, name: str, **_: Any) -> None:
    """Celery dropped a message naming a task this worker does not know: keep it for the user, and
    end the waiting job it delivers failed, saying why (it would otherwise stay queued for ever)."""
    queue = _queue_of(message)
    entry = get_quarantine().add(queue, envelope_bytes(message), f"unknown task {name!r}", logging.WARNING)
    headers = getattr(message, "headers", None) or {}
    registry = get_registry()
    record = registry.find(str(headers.get("id")))
    if (
        record is None
        or record.state not in WAITING_STATES
        or task_name(record.type) != name
        or headers.get("retries") != record.fence
    ):
        return  # not a trainq job's current delivery: the quarantine entry is all there is
    reason = (
        f"worker {sender.hostname} on queue {queue} does not know job type {record.type!r}: add its module "
        f"to that worker's TRAINQ_WORKER_MODULES and restart it, then `trainq retry {record.id}`"
        + (f" (message kept: `trainq quarantine show {entry.id}`)" if entry else "")
    )
    record = record.model_copy(update={"worker": sender.hostname})  # the worker its event names
    fields = {"error": reason, "worker": sender.hostname}
    lifecycle.finish(registry, record, JobState.FAILED, fields, reason=reason, allowed=WAITING_STATES)


@signals.task_rejected.connect
def _quarantine_rejected(sender: Any, message: Any, exc: BaseException | None, **_: Any) -> None:
    """Celery refused a message (a content type other than JSON, or no task in it): keep it."""
    reason = f"refused by Celery: {exc}" if exc else "refused by Celery: not a task message"
    get_quarantine().add(_queue_of(message), envelope_bytes(message), reason, logging.WARNING)


def screened_strategy(task: Any, app: Any, consumer: Any, **kwargs: Any) -> Callable[..., Any]:
    """Celery's strategy for a job type, refusing first a message without a content type or nested too
    deep to decode or to hand to a pool process, on which Celery's main process would exit
    (ValueError, RecursionError): refused, it is kept in the quarantine (``_quarantine_rejected``).
    The depth of messages of trainq's Redis transport was screened on arrival
    (``trainq.broker.transport.envelope_problem``): not checked twice. A delayed delivery trainq sent
    whose job has ended (cancelled) or moved on is dropped at once, not held by the worker until due
    (one with a canvas is left for its pool process, which tells its chain or chord when it is due).
    """
    handle = default_strategy(task, app, consumer, **kwargs)

    def screened(message: Any, body: Any, *args: Any, **options: Any) -> Any:
        if not message.content_type:  # its body comes undecoded, and Celery's main process unpacks it
            raise InvalidTaskError("a task message without a content type")
        raw = message.body
        if not isinstance(message.channel, transport.Channel) and (
            problem := nesting_problem(raw.encode() if isinstance(raw, str) else bytes(raw))
        ):
            raise InvalidTaskError(problem)
        if message.headers.get("eta") and not _canvas_of(body) and (why := stale_delivery(message.headers)):
            log.info("dropping delayed delivery %s: %s", message.headers.get("id"), why)
            message.ack()
            return None
        return handle(message, body, *args, **options)

    return screened


def _canvas_of(body: Any) -> bool:
    """True if a task message's ``body`` (``[args, kwargs, embed]``) carries canvas steps."""
    embed = (
        body[2] if isinstance(body, (list, tuple)) and len(body) == 3 and isinstance(body[2], dict) else {}
    )
    return any(embed.get(key) for key in ("callbacks", "errbacks", "chain", "chord"))


def stale_delivery(headers: dict[str, Any]) -> str | None:
    """Why the delivery trainq sent with these headers will never run (its job ended, or was sent
    again on another fence), or None: a plain client's has no record until it is due."""
    if not headers.get(send.SENT_HEADER) or not isinstance(job_id := headers.get("id"), str):
        return None
    record = get_registry().find(job_id)
    if record is None:
        return "no record left"
    if record.state.finished:
        return f"the job is {record.state.value}"
    return (
        f"the job was sent again (fence {record.fence})"
        if record.fence != (headers.get("retries") or 0)
        else None
    )


class JobRequest(Request):
    """Celery's request of a job delivery, with two differences.

    It does not enforce time limits that are not positive seconds (a client's ``soft_time_limit=-5``
    would interrupt the job before it is recorded): the job refuses such a delivery instead, recorded
    failed with the reason (``JobTask._record_foreign``). And a delivery whose pool process died
    mid-job (OOM killer, ``kill -9``) is re-queued by trainq with its canvas options, where Celery
    would store a failure, run its errbacks and fail its chain or chord while trainq re-ran the job.
    Before either, a command the lost (or hard-timed-out) attempt started is killed (``guard.stop``).
    The errbacks and chord callbacks Celery sends from here, failing or revoking the delivery, are its
    canvas steps (``trainq.job.canvas.sending_for``), trusted as much as it is.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if clients.time_limit_problem(self.request_dict.get("timelimit")):
            self.time_limits = (None, None)

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> None:
        exc = exc_info.exception
        exc = exc.exc if isinstance(exc, ExceptionWithTraceback) else exc
        # billiard reports Terminated for any later loss of a pool process a revoke's terminate once
        # signalled: trainq's survive that SIGTERM (JobStopped). This job's record says if it was revoked.
        if isinstance(exc, (WorkerLostError, Terminated)):
            self._stop_command()
            if self._requeued(exc):
                task_ready(self)
                if self.task.acks_late:
                    self.acknowledge()
                self.send_event("task-retried", exception=repr(exc), traceback=str(exc_info.traceback))
                return
        with canvas.sending_for(self._context):
            super().on_failure(exc_info, send_failed_event, return_ok)

    def on_timeout(self, soft: bool, timeout: float) -> None:
        if not soft:  # the pool process is killed next; its command must be gone before a retry
            self._stop_command()
        with canvas.sending_for(self._context):
            super().on_timeout(soft, timeout)

    def _announce_revoked(self, reason: str, terminated: bool, signum: Any, expired: bool) -> None:
        with canvas.sending_for(self._context):
            super()._announce_revoked(reason, terminated, signum, expired)

    def _stop_command(self) -> None:
        """Kill the process group of a command this delivery started, if it outlived its pool process."""
        guard.stop(guard.pid_file(get_settings().home, self.id, self._context.retries or 0))

    def _requeued(self, exc: WorkerLostError | Terminated) -> bool:
        """Re-queue this running delivery's job with its payload and canvas options; True too when the
        job already moved past this delivery (a reaper re-queued it first, on a loaded machine): Celery
        must record nothing for it. False (Celery's failure path records it: past the recovery cap, it
        ends dead) otherwise."""
        registry = get_registry()
        record = registry.find(self.id)
        fence = self._context.retries or 0
        if record is None:
            return False
        if record.fence != fence:
            return True
        if record.state is not JobState.RUNNING:
            return False
        if not recoverable(record):
            return False
        reason = f"pool process lost: {exc}"
        return recover(self.task, registry, record, reason=reason, request=self._context)


def _queue_of(message: Any) -> str:
    return str((getattr(message, "delivery_info", None) or {}).get("routing_key") or "?")
