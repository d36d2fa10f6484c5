"""Operations on jobs and queues after submission: submit by name, cancel, retry, pause,
resume, purge, and the broker's queue depths, worker report and job statistics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis
from kombu.exceptions import OperationalError
from kombu.transport import redis as kombu_redis

from trainq.broker import priorities, transport
from trainq.broker.names import CELERY_QUEUE, check_queue, is_queue_name
from trainq.broker.quarantine import get_quarantine
from trainq.celery import app
from trainq.errors import BrokerUnavailable, InvalidTransition, JobNotFound, SubmitRefused
from trainq.job import lifecycle
from trainq.job.record import JobRecord, JobState
from trainq.job.types import get_job_type
from trainq.pipelines.runs import Runs, get_runs, holding
from trainq.settings import get_settings
from trainq.sharing import gate
from trainq.store.registry import Registry, get_registry
from trainq.store.sharing import SharingStore


def submit(job_type: str, config: dict[str, Any] | None = None, **options: Any) -> str:
    """Validate and enqueue a job of ``job_type``; return its id (see ``JobTask.apply_async``).

    Raises SubmitRefused when its key's ``supersede: refuse`` refused it (recorded cancelled, never run):
    the caller must not take that for a job that will run.
    """
    job_id = str(get_job_type(job_type).apply_async(kwargs=config or {}, **options).id)
    record = get_registry().find(job_id)
    if record is not None and (reason := gate.refusal(record)):
        raise SubmitRefused(job_id, reason)
    return job_id


def cancel(job_id: str, registry: Registry | None = None, reason: str = "cancelled") -> JobState:
    """Cancel a waiting or running job; a running one is stopped by its heartbeat.

    Returns the state the job was in. Raises InvalidTransition for a finished job, and for a pipeline
    job that has not started (it has no record to cancel: its run can be cancelled).
    """
    registry = registry or get_registry()
    record = registry.find(job_id)
    if record is None:
        raise InvalidTransition(_not_started(job_id, Runs(registry)))
    return lifecycle.cancel(registry, record, reason)


def _not_started(job_id: str, runs: Runs) -> str:
    """Why pipeline job ``job_id``, which has no record, cannot be cancelled alone, and what can stop it;
    raises JobNotFound for an id no run holds."""
    job = runs.unstarted(job_id)
    if not job.may_start:
        return job.why  # blocked or cancelled already: nothing is left to stop
    return f"{job.why}; to stop it, cancel its run: `trainq pipeline cancel {job.pipeline_id}`"


def retry(job_id: str, registry: Registry | None = None, reason: str = "re-queued") -> JobRecord:
    """Re-queue a dead, failed, cancelled or blocked job with its payload: a new attempt series.

    A pipeline job is re-run through its run (``Runs.retry``), so that its success releases its
    dependants; one that never started (blocked, no record) is re-run that way once nothing holds it,
    else refused with what does.
    """
    runs = get_runs() if registry is None else Runs(registry)
    registry = runs.registry
    record = registry.find(job_id)
    if record is None:
        owner = runs.owner(job_id)
        if owner is None:
            raise JobNotFound(job_id)
        if not runs.retry(*owner, reason=reason):
            raise InvalidTransition(holding(owner[0], runs.job_status(*owner)))
    elif not (
        record.pipeline_id
        and record.pipeline_job
        and runs.retry(record.pipeline_id, record.pipeline_job, reason=reason)
    ):
        # not a pipeline job, or its run is gone or does not hold it: the job alone
        lifecycle.retry(get_job_type(record.type), registry, record, reason)
    return registry.get(job_id)


def pause(queue: str, registry: Registry | None = None) -> None:
    """Stop every worker consuming ``queue``; workers started later skip it too."""
    check_queue(queue)
    (registry or get_registry()).set_paused(queue, True)
    app.control.cancel_consumer(queue)


def resume(queue: str, registry: Registry | None = None) -> list[str]:
    """Let the workers started for ``queue`` consume it again; their names (none: it waits for one)."""
    check_queue(queue)
    registry = registry or get_registry()
    registry.set_paused(queue, False)
    owners = sorted(name for name, queues in registry.worker_queues().items() if queue in queues)
    if owners:
        app.control.add_consumer(queue, destination=owners)
    return owners


def purge(queue: str, registry: Registry | None = None) -> int:
    """Drop every waiting job of ``queue`` (recorded ``cancelled``); return how many.

    A reserved name is refused: purging ``unacked`` would delete kombu's own bookkeeping.
    """
    check_queue(queue)
    registry = registry or get_registry()
    dropped = 0
    for state in (JobState.QUEUED, JobState.DELAYED, JobState.RETRYING):
        while batch := registry.list(state=state, queue=queue, limit=500):
            for record in batch:
                try:
                    cancel(record.id, registry, reason=f"queue {queue} purged")
                    dropped += 1
                except InvalidTransition:
                    continue
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)
    return dropped


def queue_depths(queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each broker queue (0 for a queue the broker does not know)."""
    depths: dict[str, int] = {}
    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1)
            for queue in queues:
                channel = connection.channel()
                try:
                    depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except Exception:
                    depths[queue] = 0
                try:
                    if isinstance(channel, kombu_redis.Channel):  # and what waits for a worker to take it in
                        depths[queue] += priorities.waiting(channel.client, queue)
                finally:
                    channel.close()
    except (OSError, OperationalError) as exc:
        raise BrokerUnavailable(app.conf.broker_url, str(exc)) from exc
    return depths


def broker_queues() -> set[str]:
    """The queues a Redis broker holds a binding of (kombu's ``_kombu.binding.<queue>`` sets, which a
    client's first send to a queue writes), a misspelled one included, less kombu's and Celery's own
    (events, remote control); none on another broker, or behind a broker key prefix. A SCAN of every
    key: about a second per 300,000 keys, so only ``trainq stats --scan`` asks for it."""
    try:
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            if not isinstance(channel, kombu_redis.Channel) or channel.global_keyprefix:
                return set()
            prefix = channel.keyprefix_queue % ""
            keys = channel.client.scan_iter(match=f"{prefix}*", count=BINDING_SCAN_COUNT)
            names = {key.decode()[len(prefix) :] for key in keys}
    except (OSError, OperationalError, redis.RedisError) as exc:
        raise BrokerUnavailable(app.conf.broker_url, str(exc)) from exc
    return {name for name in names if name == CELERY_QUEUE or is_queue_name(name)}


def without_message(records: list[JobRecord]) -> list[JobRecord]:
    """Of these queued jobs, the ones a Redis broker holds no message for: their queue's lists are
    empty and no worker holds a delivery of theirs. None on another broker, which loses none so."""
    if not records:
        return []
    depths = queue_depths({r.queue for r in records})  # before the held ones: popped meanwhile, held then
    with app.connection_for_read() as connection:
        held = transport.held_job_ids(connection.default_channel)
    if held is None:
        return []
    return [r for r in records if not depths[r.queue] and r.id not in held]


#: Keys one SCAN step of ``broker_queues`` looks at: few round trips on a Redis holding the registry too.
BINDING_SCAN_COUNT = 10_000

#: States counted as work a queue's workers still have to pick up.
WAITING = (JobState.QUEUED.value, JobState.RETRYING.value)


def worker_report(registry: Registry, timeout: float) -> dict[str, Any]:
    """Live workers (Celery inspect) with their queues and active jobs, and each queue's health."""
    inspect = app.control.inspect(timeout=timeout)
    consuming = inspect.active_queues() or {}
    active = inspect.active() or {}
    job_ids = [task["id"] for tasks in active.values() for task in tasks]
    records = {r.id: r for r in registry.get_many(job_ids)}
    workers = {
        name: {
            "queues": sorted(q["name"] for q in consuming.get(name, [])),
            "active": [_active_job(task, records.get(task["id"])) for task in active.get(name, [])],
        }
        for name in sorted(set(consuming) | set(active))
    }
    per_queue = registry.queue_counts()
    paused = registry.paused_queues()
    names = set(per_queue) | {q for w in workers.values() for q in w["queues"]}
    depths = queue_depths(names)
    queues = {}
    for queue in sorted(names):
        counts = per_queue.get(queue, {})
        waiting = max(sum(counts.get(s, 0) for s in WAITING), depths[queue])
        serving = [name for name, w in workers.items() if queue in w["queues"]]
        queues[queue] = {
            "workers": serving,
            "waiting": waiting,
            "running": counts.get(JobState.RUNNING.value, 0),
            "paused": queue in paused,
            "no_worker": waiting > 0 and not serving and queue not in paused,
        }
    return {"workers": workers, "queues": queues}


def _active_job(task: dict[str, Any], record: JobRecord | None) -> dict[str, Any]:
    if record is None:
        return {"id": task["id"], "name": task.get("name"), "type": task.get("name"), "progress": None}
    return {
        "id": record.id,
        "name": record.name,
        "type": record.type,
        "progress": record.progress and record.progress.percent,
    }


def stats_report(registry: Registry, scan: bool = False) -> dict[str, Any]:
    """``trainq stats``: jobs per state; per queue that has jobs or messages (of those trainq knows,
    Celery's default queue included; with ``scan``, every queue the broker knows, so a misspelled one a
    client sent to too: ``broker_queues``) its state counts, pending messages, pause and whether a
    live worker reads it (``live_worker``, as ``SharingStore.live_queues`` says); the
    messages set aside, those waiting in Celery's default queue (``unrouted``: sent by a client
    without ``queue=``, which no trainq worker consumes), Redis's memory in use, the retention in
    force (seconds, 0 = forever), and whether the registry's Redis lost its data (``data_loss``: the
    note, else None)."""
    states = registry.counts()
    per_queue = registry.queue_counts()
    paused = registry.paused_queues()
    started = {queue for queues in registry.worker_queues().values() for queue in queues}
    names = {*per_queue, *paused, *started, CELERY_QUEUE, *(broker_queues() if scan else ())}
    depths = queue_depths(names)
    live = SharingStore(registry.client, registry.keys).live_queues(names)
    settings = get_settings()
    return {
        "states": {s.value: n for s, n in states.items()},
        "quarantined": get_quarantine().count(),
        "unrouted": depths[CELERY_QUEUE],
        "memory_used": registry.memory_used(),
        "data_loss": registry.data_loss(),
        "retention_s": {s.value: settings.retention(s.value) for s in JobState if s.finished},
        "queues": {
            q: {
                "states": per_queue.get(q, {}),
                "pending": depths[q],
                "paused": q in paused,
                "live_worker": q in live,
            }
            for q in sorted(names)
            if q in per_queue or depths[q]
        },
    }
