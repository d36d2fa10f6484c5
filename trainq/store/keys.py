"""Every Redis key trainq writes, in one place; all start with the settings' key prefix."""

from __future__ import annotations


class Keys:
    """Key names under one prefix (``trainq:`` by default)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def job(self, job_id: str) -> str:
        """Hash: the job record, each field JSON-encoded."""
        return f"{self.prefix}job:{job_id}"

    def events(self, job_id: str) -> str:
        """List: the job's state transitions, oldest first, as JSON."""
        return f"{self.prefix}job:{job_id}:events"

    def log(self, job_id: str) -> str:
        """Stream: the job's log lines (``line`` field)."""
        return f"{self.prefix}job:{job_id}:log"

    def log_added(self, job_id: str) -> str:
        """String: how many lines were ever appended to the job's log (Redis 6's XINFO does not say)."""
        return f"{self.prefix}job:{job_id}:log:added"

    def message(self, job_id: str) -> str:
        """String: the payload as sent, kept only when it holds secret values the record masks."""
        return f"{self.prefix}job:{job_id}:message"

    def canvas(self, job_id: str) -> str:
        """String: the Celery canvas options (chain, links, chord, group) of a canvas member, as JSON,
        so a re-send without the original request continues its canvas."""
        return f"{self.prefix}job:{job_id}:canvas"

    def finished_prefix(self) -> str:
        """Prefix of the per-state sorted sets of finished standalone jobs."""
        return f"{self.prefix}finished:"

    def finished(self, state: str) -> str:
        """Sorted set: standalone jobs in the finished ``state``, scored by creation time (the retention
        sweep reads it; the state index holds that state's pipeline jobs, which go with their run).

        Release 95980f0 scored it by finish time and kept these jobs in the state index too.
        """
        return f"{self.finished_prefix()}{state}"

    def index_all(self) -> str:
        """Sorted set of every job id, kept by release 95980f0 only; ``trainq migrate`` deletes it."""
        return f"{self.prefix}index:all"

    def index_prefix(self) -> str:
        """Prefix of the per-state sorted sets (``<prefix>index:state:<state>``)."""
        return f"{self.prefix}index:state:"

    def index_state(self, state: str) -> str:
        """Sorted set: jobs in ``state`` scored by creation time (of a finished state, pipeline jobs only)."""
        return f"{self.index_prefix()}{state}"

    def index_route(self, queue: str, job_type: str) -> str:
        """Sorted set: jobs of ``job_type`` sent to ``queue`` scored by creation time (listing by queue
        or by type reads the routes of every known type or queue)."""
        return f"{self.prefix}index:route:{queue}:{job_type}"

    def index_type(self, job_type: str) -> str:
        """Sorted set: jobs of ``job_type`` scored by creation time, kept by schema versions before 3."""
        return f"{self.prefix}index:type:{job_type}"

    def index_queue(self, queue: str) -> str:
        """Sorted set: jobs sent to ``queue`` scored by creation time, kept by schema versions before 3."""
        return f"{self.prefix}index:queue:{queue}"

    def index_tag(self, tag: str) -> str:
        """Sorted set: jobs tagged ``k=v`` scored by creation time."""
        return f"{self.prefix}index:tag:{tag}"

    def stats(self) -> str:
        """Hash: ``[queue, type, state]`` (a JSON array, see ``trainq.store.registry.stats_field``) ->
        number of jobs of that type sent to that queue in that state; a field at 0 stays, so the
        fields name every queue and type ever recorded."""
        return f"{self.prefix}stats"

    def queues(self) -> str:
        """Set: queues jobs were sent to, written by schema versions before 4 and by older workers
        during a rolling deploy (readers add its names to the ``stats`` fields')."""
        return f"{self.prefix}queues"

    def queue_stats(self, queue: str) -> str:
        """Hash: state -> number of jobs of ``queue`` in it, written by schema versions before 4 and by
        older workers during a rolling deploy (readers add it to the ``stats`` sums by queue and total)."""
        return f"{self.prefix}stats:queue:{queue}"

    def types(self) -> str:
        """Set: job types jobs were recorded for, written by schema versions before 4 and by older
        workers during a rolling deploy (readers add its names to the ``stats`` fields')."""
        return f"{self.prefix}types"

    def type_stats(self, job_type: str) -> str:
        """Hash: state -> number of jobs of ``job_type`` in it, written by schema versions before 4 and
        by older workers during a rolling deploy (readers add it to the ``stats`` sums by type)."""
        return f"{self.prefix}stats:type:{job_type}"

    def metrics(self) -> str:
        """Hash: metric observations at job end (duration buckets, retries); see ``trainq.ops.metrics``."""
        return f"{self.prefix}metrics"

    def leases(self) -> str:
        """Sorted set: job id -> time by which its worker must renew (or its retry be due)."""
        return f"{self.prefix}leases"

    def idempotency(self, key: str) -> str:
        """String: the id of the job first submitted with idempotency ``key``."""
        return f"{self.prefix}idempotency:{key}"

    def paused(self) -> str:
        """Set: names of paused queues."""
        return f"{self.prefix}paused"

    def pipeline(self, pipeline_id: str) -> str:
        """Hash: a pipeline record."""
        return f"{self.pipeline_prefix()}{pipeline_id}"

    def pipeline_prefix(self) -> str:
        """Prefix of a pipeline run's keys (the transition script builds its ``:specs`` and ``:waiting``)."""
        return f"{self.prefix}pipeline:"

    def pipeline_waiting(self, pipeline_id: str) -> str:
        """Hash: pipeline job id -> number of its dependencies not yet succeeded."""
        return f"{self.pipeline(pipeline_id)}:waiting"

    def pipelines(self) -> str:
        """Sorted set: pipeline ids scored by creation time."""
        return f"{self.prefix}index:pipelines"

    def pipeline_runs(self, pipeline_id: str) -> str:
        """Sorted set: the run ids of one pipeline id (from its file) scored by creation time."""
        return f"{self.prefix}index:pipeline:{pipeline_id}"

    def pipeline_jobs(self, pipeline_id: str) -> str:
        """Hash: pipeline job id -> its step in the run (waiting, released, succeeded, failed, ...)."""
        return f"{self.prefix}pipeline:{pipeline_id}:jobs"

    def pipeline_specs(self, pipeline_id: str) -> str:
        """Hash: pipeline job id -> JSON of its job type, payload, options and dependants."""
        return f"{self.pipeline(pipeline_id)}:specs"

    def pipeline_blocked(self, pipeline_id: str) -> str:
        """Hash: blocked pipeline job id -> the failed job that blocks it."""
        return f"{self.prefix}pipeline:{pipeline_id}:blocked"

    def pipeline_sweep(self, pipeline_id: str) -> str:
        """String: held (with an expiry) while one process sweeps the run for lost releases."""
        return f"{self.prefix}pipeline:{pipeline_id}:sweep"

    def pipelines_finished(self, state: str) -> str:
        """Sorted set: pipeline runs that ended in ``state``, scored by when (retention sweeps it)."""
        return f"{self.prefix}pipelines:finished:{state}"

    def pipelines_running(self) -> str:
        """Set: ids of pipeline runs still running."""
        return f"{self.prefix}pipelines:running"

    def master_run(self) -> str:
        """String: the run id of the Redis master last seen by a reaper (a change means failover)."""
        return f"{self.prefix}master:run_id"

    def data_loss(self) -> str:
        """String: when (epoch seconds) a reaper saw this Redis restarted without its data; expires."""
        return f"{self.prefix}master:data_loss"

    def replication_mark(self) -> str:
        """String: written just before WAIT so the wait covers every earlier write of any connection."""
        return f"{self.prefix}master:mark"

    def workers(self) -> str:
        """Hash: worker hostname -> JSON of its queues and last heartbeat."""
        return f"{self.prefix}workers"

    def redbeat_prefix(self) -> str:
        """Prefix of redbeat's keys (schedule entries, their index and statics; see ``trainq.schedules``)."""
        return f"{self.prefix}redbeat:"

    def redbeat_lock(self) -> str:
        """String: the lock the one active Beat holds."""
        return f"{self.prefix}redbeat::lock"

    def migration(self) -> str:
        """Hash: where an interrupted ``trainq migrate`` stopped (its SCAN cursors); gone when done."""
        return f"{self.prefix}migrate"

    def limits(self) -> str:
        """Hash: concurrency key -> JSON of its policy (``trainq.job.limit.Policy``)."""
        return f"{self.prefix}limits"

    def limits_active(self) -> str:
        """Set: concurrency keys with jobs holding a slot or parked."""
        return f"{self.prefix}limits:active"

    def limits_waiting(self) -> str:
        """Sorted set: keys with parked jobs and a free slot, scored by their turn (virtual time)."""
        return f"{self.prefix}limits:waiting"

    def limit_prefix(self) -> str:
        """Prefix of each concurrency key's own keys (the sharing scripts build them from it)."""
        return f"{self.prefix}limit:"

    def limit_running(self, key: str) -> str:
        """Set: ids of the jobs holding a slot of concurrency ``key``."""
        return f"{self.limit_prefix()}{key}:running"

    def limit_parked(self, key: str) -> str:
        """List: ids of the jobs parked for concurrency ``key``, oldest first."""
        return f"{self.limit_prefix()}{key}:parked"

    def fair_queues(self) -> str:
        """Hash: fair queue -> JSON of its policy (``{"window": N}`` or ``{}``: the live capacity)."""
        return f"{self.prefix}fair:queues"

    def fair_jobs(self) -> str:
        """Hash: id of a job of a fair queue or type -> its queue, until the job ends."""
        return f"{self.prefix}fair:jobs"

    def fair_prefix(self) -> str:
        """Prefix of each fair queue's own keys (the sharing scripts build them from it)."""
        return f"{self.prefix}fair:"

    def fair_inflight(self, queue: str) -> str:
        """Set: ids of the fair jobs of ``queue`` let through to the broker and not yet ended."""
        return f"{self.fair_prefix()}{queue}:inflight"

    def fair_capacity(self, queue: str) -> str:
        """Hash: worker hostname -> "<processes> <expiry epoch>" of each worker consuming ``queue``: a fair
        queue's default window, and any queue's live workers."""
        return f"{self.fair_prefix()}{queue}:capacity"

    def quarantine(self) -> str:
        """List: messages workers set aside as undecodable or refused, newest first, as JSON."""
        return f"{self.prefix}quarantine"
