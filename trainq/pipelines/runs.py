"""Pipeline runs in Redis: each run's jobs, their steps and dependency counters, moved on by
Lua scripts so a release, a block, a cancel or a resume is one atomic step
(see ``trainq.pipelines.pipeline``).
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import shutil
import time
from collections.abc import Callable
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from trainq.errors import (
    BrokerUnavailable,
    InvalidTransition,
    JobNotFound,
    RunNotFound,
    TrainqError,
)
from trainq.job import artifacts, lifecycle, send
from trainq.job.record import (
    RETRYABLE_STATES,
    SCHEMA_VERSION,
    VERSION_FIELD,
    JobRecord,
    JobState,
    Progress,
)
from trainq.job.send import Sendable
from trainq.job.types import get_job_type
from trainq.pipelines import dag
from trainq.settings import get_settings
from trainq.sharing import gate
from trainq.store import lua
from trainq.store.registry import Registry, get_registry
from trainq.store.sharing import SharingStore

log = logging.getLogger("trainq.pipelines.runs")
FIRST_FENCE = 1
#: Random bytes in a run id (``<pipeline_id>-<hex>``); a taken id is never reused, another is drawn.
RUN_ID_BYTES = 6
RUN_ID_TRIES = 5
#: Run hash fields ``pipeline list`` reads (the run also stores its ``graph``).
RUN_FIELDS = ("pipeline_id", "state", "source", "created_at", "finished_at")


class Step(StrEnum):
    """Where a job is in its run; once released, its job record says more."""

    WAITING = "waiting"
    RELEASED = "released"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"


class RunState(StrEnum):
    """Where a pipeline run is."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Steps of jobs that ended without success, or were blocked by one: what a resume reopens.
STOPPED_STEPS = frozenset({Step.FAILED, Step.BLOCKED, Step.CANCELLED})
#: Run states a run ends in, in the order of the scripts' finished-runs keys.
FINAL_RUN_STATES = (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


class JobStatus(BaseModel):
    """One job of a run as ``pipeline status`` shows it."""

    job_id: str
    state: str
    depends_on: list[str]
    job: str | None = None
    attempts: int | None = None
    duration_s: float | None = None
    exit_code: int | None = None
    error: str | None = None
    blocked_by: str | None = None
    waiting_for: list[str] = []
    why_queued: str | None = None
    artifacts: list[str] = []
    progress: Progress | None = None
    unmatched_result_files: list[str] = []
    uncollected_result_files: list[str] = []


class Unstarted(BaseModel):
    """A pipeline job with no record yet (it has not started), as ``trainq show`` and the API show it:
    its step in run ``pipeline_id`` and what holds it (``why``)."""

    id: str
    state: str
    depends_on: list[str]
    blocked_by: str | None = None
    pipeline_id: str
    pipeline_job: str
    why: str

    @property
    def may_start(self) -> bool:
        """True while the job starts by itself once it can: waiting for dependencies, or being queued."""
        return self.state in (Step.WAITING, JobState.QUEUED)


class RunStatus(BaseModel):
    """A pipeline run and its jobs in file order."""

    id: str
    pipeline_id: str
    state: RunState
    source: str
    created_at: float
    finished_at: float | None = None
    jobs: list[JobStatus] = []

    @property
    def finished(self) -> bool:
        """True once nothing more of the run will start by itself."""
        return self.state is not RunState.RUNNING

    def graph(self) -> dag.Dag:
        """The run's job graph."""
        return dag.Dag({job.job_id: job.depends_on for job in self.jobs})


def specs_of(planned: list[dag.PlannedJob]) -> dict[str, dict[str, Any]]:
    """Each job's spec as a run stores it: its type, payload, submit options and dependants."""
    dependants = dag.Dag({job.job_id: job.depends_on for job in planned}).dependants()
    return {
        job.job_id: {
            "type": job.type,
            "payload": job.payload,
            "options": job.options,
            "dependants": dependants[job.job_id],
        }
        for job in planned
    }


class Runs:
    """Pipeline runs in Redis, beside the registry's job records and under its key prefix."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.client = registry.client
        self.keys = registry.keys
        scripts = {
            "succeeded": lua.source("run_common", "create_common", "run_succeeded")
            + "\nreturn run_succeeded(KEYS, ARGV)",
            "failed": lua.source("run_common", "run_failed") + "\nreturn run_failed(KEYS, ARGV)",
            "cancel": lua.source("run_cancel"),
            "resume": lua.source("run_resume"),
        }
        self._scripts = {name: self.client.register_script(code) for name, code in scripts.items()}

    def _call(self, script: str, run_id: str, *args: Any) -> Any:
        return self._scripts[script](keys=self.script_keys(run_id), args=[run_id, time.time(), *args])

    def script_keys(self, run_id: str) -> list[str]:
        """The keys every run script reads (see ``lua/run_common.lua``)."""
        k = self.keys
        return [
            k.pipeline(run_id),
            k.pipeline_jobs(run_id),
            k.pipeline_specs(run_id),
            k.pipeline_waiting(run_id),
            k.pipeline_blocked(run_id),
            k.pipelines_running(),
            *self._finished_sets(),
        ]

    def _finished_sets(self) -> list[str]:
        """The retention sets of runs that ended, one per final run state."""
        return [self.keys.pipelines_finished(s.value) for s in FINAL_RUN_STATES]

    def start(self, pipeline_id: str, planned: list[dag.PlannedJob], source: str) -> str:
        """Store a new run of ``planned`` jobs and send its roots; return the run id."""
        graph = dag.Dag({job.job_id: job.depends_on for job in planned})
        now = time.time()
        specs = {job: json.dumps(spec) for job, spec in specs_of(planned).items()}
        steps = {job: (Step.WAITING if deps else Step.RELEASED).value for job, deps in graph.deps.items()}
        waiting = {job: len(deps) for job, deps in graph.deps.items() if deps}
        run = {
            "pipeline_id": pipeline_id,
            "state": RunState.RUNNING,
            "source": source,
            "created_at": now,
            "updated_at": now,
            "graph": json.dumps(graph.deps),
            VERSION_FIELD: SCHEMA_VERSION,
        }
        k = self.keys

        def create(pipe: Any, run_id: str) -> bool:
            # Under WATCH of the run key: the id is taken only if no run has it, in one transaction.
            if pipe.exists(k.pipeline(run_id)):
                return False
            pipe.multi()
            pipe.hset(k.pipeline(run_id), mapping={"id": run_id, **run})
            pipe.hset(k.pipeline_specs(run_id), mapping=specs)
            pipe.hset(k.pipeline_jobs(run_id), mapping=steps)
            if waiting:
                pipe.hset(k.pipeline_waiting(run_id), mapping=waiting)
            pipe.zadd(k.pipelines(), {run_id: now})
            pipe.zadd(k.pipeline_runs(pipeline_id), {run_id: now})
            pipe.sadd(k.pipelines_running(), run_id)
            return True

        for _ in range(RUN_ID_TRIES):
            run_id = f"{pipeline_id}-{secrets.token_hex(RUN_ID_BYTES)}"
            if self.client.transaction(
                functools.partial(create, run_id=run_id), k.pipeline(run_id), value_from_callable=True
            ):
                break
        else:
            raise TrainqError(f"no free run id for pipeline {pipeline_id!r} after {RUN_ID_TRIES} tries")
        try:
            roots = [(job, json.loads(specs[job])) for job in graph.roots()]
            self.send(run_id, roots, new=True)  # a run id is never reused: none of its jobs has a record
        except BrokerUnavailable:
            self.delete(run_id)
            raise
        log.info("pipeline run %s started with %d jobs", run_id, len(planned))
        return run_id

    def send(self, run_id: str, jobs: list[tuple[str, dict[str, Any]]], new: bool = False) -> list[str]:
        """Record released ``(job, spec)`` pairs that have no record yet (all, if ``new``) and send them
        as a group."""
        batch = [self._sendable(run_id, job, spec) for job, spec in jobs]
        keyed = [(task, r, p) for task, r, p in batch if gate.key_of(r)]
        plain = [(task, r, p) for task, r, p in batch if not gate.key_of(r)]
        # None of a run cancelled meanwhile (its cancel stops the jobs it finds recorded); the sweep
        # re-sends them if the broker is down
        cancelled = (self.keys.pipeline(run_id), "state", RunState.CANCELLED.value)
        sent = send.send_group(plain, new, unless=cancelled) + send.send_group(
            keyed, new, hold=gate.park_or_pass, unless=cancelled
        )
        return [r.id for r in sent]

    def built(self, run_id: str, specs: dict[str, Any]) -> str:
        """The records and messages of the jobs ``specs`` describes, built for the run step that
        releases them to write and send with it (``lua/run_succeeded.lua``): JSON {job: create doc},
        or '' if none can go that way. A keyed job (its gate decides when it is sent), one that
        cannot be built, and all when the broker is not the registry's Redis, are sent the usual
        way after the step."""
        if not send.same_redis():
            return ""
        batch = []
        for job, spec in specs.items():
            try:
                sendable = self._sendable(run_id, job, spec)
            except (TrainqError, ValidationError):
                continue  # left to the send after the step, as any job not built here
            if not gate.key_of(sendable[1]):
                batch.append(sendable)
        messages = send.prepared(batch)
        if not messages:
            return ""
        return json.dumps(
            {r.pipeline_job: self.registry.creation([r], writes=messages[r.id]) for _, r, _ in batch}
        )

    def _sendable(self, run_id: str, job: str, spec: dict[str, Any]) -> Sendable:
        """Job ``job`` of run ``run_id`` from its ``spec``: its task, new record and message payload."""
        task = get_job_type(spec["type"])
        options = {**spec["options"], "pipeline_id": run_id, "pipeline_job": job}
        record, payload, _ = task.new_record(spec["payload"], options, task_id=f"{run_id}.{job}")
        record.fence = FIRST_FENCE
        return task, record, payload

    def job_finished(self, record: JobRecord) -> None:
        """Release the dependants of a succeeded job, or block the descendants of a failed one."""
        if found := run_step(record):
            step, args = found
            script = "succeeded" if step == "run_succeeded" else "failed"
            self.moved_on(record, self._call(script, record.pipeline_id or "", *args))

    def moved_on(self, record: JobRecord, reply: Any) -> None:
        """Send what a finished job's run step released (its ``reply``), or log what it blocked."""
        run_id, job = record.pipeline_id or "", record.pipeline_job
        if record.state is JobState.SUCCEEDED:
            # a job with no spec was created and sent by the step itself (``built``)
            pairs = ((reply[n].decode(), reply[n + 1]) for n in range(0, len(reply), 2))
            released = [(job, json.loads(spec)) for job, spec in pairs if spec]
            if released:
                # A job its dependencies' success releases was never released before, so never
                # recorded: its dependencies stay succeeded once they are (resume reopens no success)
                self.send(run_id, released, new=True)
        elif reply:
            log.info(
                "pipeline run %s: %s %s, %d jobs blocked",
                run_id,
                job,
                record.state.value,
                reply,
            )

    def cancel(self, run_id: str, by: str = "") -> int:
        """Cancel a running run: waiting jobs never start, running ones are stopped. Returns how many.

        ``by`` (``via web by alice``) ends the reason recorded in each stopped job's events.
        """
        self._run(run_id)
        active = self._call("cancel", run_id)
        if active is None:
            state = self._run(run_id)["state"]
            raise InvalidTransition(f"pipeline run {run_id} is {state}; only a running run can be cancelled")
        return self._stop(run_id, [j.decode() for j in active], by)

    def held_by_cancel(self, record: JobRecord) -> bool:
        """True, with ``record`` (a job of a run, just queued again) cancelled, if its run was cancelled
        meanwhile; False while the run runs (it is sent)."""
        run_id = record.pipeline_id or ""
        if self.client.hget(self.keys.pipeline(run_id), "state") != RunState.CANCELLED.value.encode():
            return False
        self._stop(run_id, [record.pipeline_job or ""])
        return True

    def _stop(self, run_id: str, jobs: list[str], by: str = "") -> int:
        stopped = 0
        reason = " ".join(filter(None, [f"pipeline run {run_id} cancelled", by]))
        for job in jobs:
            try:
                lifecycle.cancel(self.registry, self.registry.get(f"{run_id}.{job}"), reason=reason)
                stopped += 1
            except JobNotFound:  # released but not yet recorded: its sender sees the cancel
                self.client.hset(self.keys.pipeline_jobs(run_id), job, Step.CANCELLED)
            except InvalidTransition:
                pass  # it finished meanwhile
        return stopped

    def resume(self, run_id: str, by: str = "") -> list[str]:
        """Re-run the failed, dead, cancelled and blocked jobs, keeping the succeeded ones.

        Returns the jobs started now; the reopened others start when their dependencies succeed.
        ``by`` ends the reason recorded in each re-queued job's events.
        """
        reason = " ".join(filter(None, [f"pipeline run {run_id} resumed", by]))
        reopened, jobs = self._reopen(run_id, "", reason)
        if not reopened:
            state = self._run(run_id)["state"]
            raise InvalidTransition(
                f"pipeline run {run_id} is {state} with no failed, blocked or cancelled jobs"
            )
        return jobs

    def retry(self, run_id: str, job: str, reason: str = "re-queued") -> bool:
        """Re-run one failed, dead, cancelled or blocked job whose dependencies have all succeeded, as
        ``resume`` would: the run runs again, and the descendants the job alone holds back are
        released as it succeeds (what ``trainq retry`` does to a pipeline job).

        Returns False, changing nothing, if the run is gone or does not hold the job that way.
        """
        try:
            reopened, _ = self._reopen(run_id, job, reason)
        except RunNotFound:
            return False
        return reopened > 0

    def stopped(self, run_id: str, job: str = "") -> list[str]:
        """What may run again: the failed, blocked and cancelled jobs a resume reopens (``job`` ''), or
        ``job`` and its stopped descendants, which a retry of it may reopen (``lua/run_resume.lua``)."""
        graph = dag.Dag(json.loads(self._run(run_id)["graph"]))
        steps = _text(self.client.hgetall(self.keys.pipeline_jobs(run_id)))
        halted = [j for j in graph.deps if steps.get(j) in STOPPED_STEPS]
        if not job:
            return halted
        dependants, found = graph.dependants(), [job]
        for at in found:  # grows as it goes: a walk down through stopped jobs only
            found += [d for d in dependants.get(at, []) if d in halted and d not in found]
        return found

    def _reopen(self, run_id: str, job: str, reason: str) -> tuple[int, list[str]]:
        """Reopen ``job`` and the descendants it holds back (every stopped job if ``job`` is ''), then
        re-queue or send those whose dependencies have all succeeded. Returns how many were reopened,
        and those."""
        graph: dict[str, list[str]] = json.loads(self._run(run_id)["graph"])
        args = [a for name, deps in graph.items() for a in (name, len(deps), *deps)]
        reopened, *restart = self._call("resume", run_id, job, *args)
        jobs = [j.decode() for j in restart]
        records = {r.pipeline_job: r for r in self.registry.get_many(f"{run_id}.{j}" for j in jobs)}
        for record in records.values():
            if record.state in RETRYABLE_STATES:
                lifecycle.retry(get_job_type(record.type), self.registry, record, reason=reason)
            elif record.state is JobState.SUCCEEDED:
                self.job_finished(record)
        self._send_unrecorded(run_id, [j for j in jobs if j not in records])
        return int(reopened), jobs

    def owner(self, job_id: str) -> tuple[str, str] | None:
        """The run and job a pipeline job id ``<run id>.<job_id>`` names, whether or not it has a
        record yet; None if no run has such a job."""
        for at in (n for n, char in enumerate(job_id) if char == "."):
            run_id, job = job_id[:at], job_id[at + 1 :]
            graph = self.client.hget(self.keys.pipeline(run_id), "graph")
            if graph and job in json.loads(graph):
                return run_id, job
        return None

    def job_status(self, run_id: str, job: str) -> JobStatus:
        """Job ``job`` of the run as ``pipeline status`` shows it."""
        return next(j for j in self.status(run_id).jobs if j.job_id == job)

    def unstarted(self, job_id: str) -> Unstarted:
        """Pipeline job ``job_id`` (``<run id>.<job_id>``), which has no record: its step and what holds it;
        raises JobNotFound for an id no run has."""
        owner = self.owner(job_id)
        if owner is None:
            raise JobNotFound(job_id)
        run_id, job = owner
        status = self.job_status(run_id, job)
        return Unstarted(
            id=job_id,
            state=status.state,
            depends_on=status.depends_on,
            blocked_by=status.blocked_by,
            pipeline_id=run_id,
            pipeline_job=job,
            why=holding(run_id, status),
        )

    def _send_unrecorded(self, run_id: str, jobs: list[str]) -> None:
        if jobs:
            specs = self.client.hmget(self.keys.pipeline_specs(run_id), jobs)
            self.send(
                run_id, [(job, json.loads(spec or "{}")) for job, spec in zip(jobs, specs, strict=True)]
            )

    def sweep(self, run_id: str, grace_s: float) -> int:
        """Finish releases a dead process left undone more than ``grace_s`` ago; return how many."""
        run = _text(self.client.hgetall(self.keys.pipeline(run_id)))
        if not run:  # deleted meanwhile
            self.client.srem(self.keys.pipelines_running(), run_id)
            return 0
        if not self.client.set(self.keys.pipeline_sweep(run_id), 1, nx=True, px=max(int(grace_s * 1000), 1)):
            return 0
        steps = _text(self.client.hgetall(self.keys.pipeline_jobs(run_id)))
        released = [job for job, step in steps.items() if step == Step.RELEASED]
        if not released:
            return 0
        deadline = time.time() - grace_s
        graph = json.loads(run["graph"])
        records = {r.pipeline_job: r for r in self.registry.get_many(f"{run_id}.{j}" for j in released)}
        ended = [r for r in records.values() if r.state.finished and (r.finished_at or 0) < deadline]
        for record in ended:
            self.job_finished(record)
        lost = [j for j in released if j not in records]
        deps = {
            r.pipeline_job: r.finished_at or 0
            for r in self.registry.get_many(f"{run_id}.{d}" for j in lost for d in graph[j])
        }
        due = [
            j for j in lost if max([float(run["created_at"])] + [deps.get(d, 0) for d in graph[j]]) < deadline
        ]
        self._send_unrecorded(run_id, due)
        return len(ended) + len(due)

    def sweep_all(self, grace_s: float) -> int:
        """Sweep every running run."""
        return sum(self.sweep(run_id, grace_s) for run_id in self.running())

    def running(self) -> set[str]:
        """The ids of the runs still running."""
        return {r.decode() for r in self.client.smembers(self.keys.pipelines_running())}

    def ended(self, run_id: str) -> bool:
        """True once run ``run_id`` has finished (nothing more of it starts by itself) or is gone."""
        state = self.client.hget(self.keys.pipeline(run_id), "state")
        return state is None or state.decode() != RunState.RUNNING

    def source(self, run_id: str) -> str:
        """What the run started from: a file's absolute path, ``web by alice``, ``schedule nightly``..."""
        return self._run(run_id).get("source", "")

    def specs(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Each job's spec as the run stored it when it started (``specs_of``)."""
        stored = self.client.hgetall(self.keys.pipeline_specs(run_id))
        return {job.decode(): json.loads(spec) for job, spec in stored.items()}

    def find(self, ref: str) -> str:
        """The run id ``ref`` names: a run id, else a pipeline id meaning its latest run."""
        if self.client.exists(self.keys.pipeline(ref)):
            return ref
        latest = self.client.zrevrange(self.keys.pipeline_runs(ref), 0, 0)
        if not latest:
            raise RunNotFound(ref)
        return str(latest[0].decode())

    def _run(self, run_id: str) -> dict[str, str]:
        raw = self.client.hgetall(self.keys.pipeline(run_id))
        if not raw:
            raise RunNotFound(run_id)
        return _text(raw)

    def status(self, run_id: str) -> RunStatus:
        """The run and each job's state, attempts, duration, exit code and what holds it."""
        run = self._run(run_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.pipeline_jobs(run_id))
        pipe.hgetall(self.keys.pipeline_blocked(run_id))
        raw_steps, raw_blocked = pipe.execute()
        steps, blocked = _text(raw_steps), _text(raw_blocked)
        graph: dict[str, list[str]] = json.loads(run["graph"])
        records = {r.pipeline_job: r for r in self.registry.get_many(f"{run_id}.{j}" for j in graph)}
        jobs = []
        for job, deps in graph.items():
            step, record = steps.get(job, Step.WAITING), records.get(job)
            status = JobStatus(job_id=job, state=step, depends_on=deps, blocked_by=blocked.get(job))
            if step == Step.WAITING:
                status.waiting_for = [d for d in deps if steps.get(d) != Step.SUCCEEDED]
            elif record is not None and step != Step.BLOCKED:
                status.state = record.state.value
                status.job, status.attempts, status.exit_code = record.id, record.attempt, record.exit_code
                status.duration_s, status.error, status.artifacts, status.progress = (
                    record.duration_s,
                    record.error,
                    record.artifacts,
                    record.progress,
                )
                status.unmatched_result_files = record.unmatched_result_files
                status.uncollected_result_files = record.uncollected_result_files
            elif step == Step.RELEASED:
                status.state = JobState.QUEUED.value
            jobs.append(status)
        queued = {job: r.queue for job, r in records.items() if r.state is JobState.QUEUED}
        holds: dict[str, str] = {}
        if queued:
            live = SharingStore(self.client, self.keys).live_queues(queued.values())
            holds = self.registry.queue_holds(queued.values(), live)
        for status in jobs:
            if status.state == JobState.QUEUED and status.job_id in queued:
                status.why_queued = holds.get(queued[status.job_id])
        return _run_status(run_id, run, jobs)

    def recent(self, limit: int = 50) -> list[RunStatus]:
        """The newest runs, each job with its step only (no job records read)."""
        ids = [i.decode() for i in self.client.zrevrange(self.keys.pipelines(), 0, limit - 1)]
        pipe = self.client.pipeline(transaction=False)
        for run_id in ids:
            pipe.hmget(self.keys.pipeline(run_id), *RUN_FIELDS)
            pipe.hgetall(self.keys.pipeline_jobs(run_id))
        replies = pipe.execute()
        runs = []
        for run_id, fields, steps in zip(ids, replies[::2], replies[1::2], strict=True):
            run = {name: value.decode() for name, value in zip(RUN_FIELDS, fields, strict=True) if value}
            jobs = [JobStatus(job_id=job, state=step, depends_on=[]) for job, step in _text(steps).items()]
            if run:
                runs.append(_run_status(run_id, run, jobs))
        return runs

    def results(self, run_id: str, output: Path) -> list[Path]:
        """Copy the result files of the run's succeeded jobs to ``output/<job>/`` (symlinks as links);
        return the files copied."""
        source = get_settings().artifacts_dir / run_id
        copied: list[Path] = []
        for job in self.status(run_id).jobs:
            folder = source / job.job_id
            if job.state != JobState.SUCCEEDED.value or not folder.is_dir():
                continue
            shutil.copytree(folder, output / job.job_id, symlinks=True, dirs_exist_ok=True)
            copied += [
                output / p.relative_to(source) for p in folder.rglob("*") if p.is_symlink() or p.is_file()
            ]
        return sorted(copied)

    def uncollected(self, run_id: str) -> list[str]:
        """What the run's jobs declared in ``result_files`` but did not collect: per job, its entries
        if it did not succeed, else those that matched nothing, then each match not copied."""
        declared = {
            job.decode(): [
                artifacts.entry_pattern(e)[0] for e in json.loads(spec)["options"].get("result_files", [])
            ]
            for job, spec in self.client.hgetall(self.keys.pipeline_specs(run_id)).items()
        }
        lines = []
        for job in self.status(run_id).jobs:
            if not declared.get(job.job_id):
                continue
            if job.state != JobState.SUCCEEDED.value:
                lines.append(f"{job.job_id}: {', '.join(declared[job.job_id])} (the job is {job.state})")
                continue
            if job.unmatched_result_files:
                lines.append(f"{job.job_id}: {', '.join(job.unmatched_result_files)} matched nothing")
            lines += [f"{job.job_id}: {line}" for line in job.uncollected_result_files]
        return lines

    def delete(self, run_id: str) -> None:
        """Forget a run and its job records (used when its start could not be sent)."""
        run = self._run(run_id)
        self.registry.delete_many(f"{run_id}.{job}" for job in json.loads(run["graph"]))
        k = self.keys
        self.client.delete(
            k.pipeline(run_id),
            k.pipeline_jobs(run_id),
            k.pipeline_specs(run_id),
            k.pipeline_waiting(run_id),
            k.pipeline_blocked(run_id),
        )
        self.client.zrem(k.pipelines(), run_id)
        self.client.zrem(k.pipeline_runs(run["pipeline_id"]), run_id)
        self.client.srem(k.pipelines_running(), run_id)
        for finished in self._finished_sets():
            self.client.zrem(finished, run_id)

    def expire(self, retention: Callable[[str], float], now: float, batch: int) -> int:
        """Drop runs (with their jobs) that ended longer ago than their state's retention.

        At most ``batch`` runs per final state, oldest first. A run with a job still waiting or
        running (re-queued by hand) is kept a fresh retention period. Returns how many were dropped.
        """
        dropped = 0
        for state, finished in zip(FINAL_RUN_STATES, self._finished_sets(), strict=True):
            keep_s = retention(state.value)
            if keep_s <= 0:
                continue
            for raw in self.client.zrangebyscore(finished, "-inf", now - keep_s, start=0, num=batch):
                run_id = raw.decode()
                if not self.client.zrem(finished, run_id):
                    continue  # another worker's sweep took it
                run = self.client.hget(self.keys.pipeline(run_id), "graph")
                jobs = [f"{run_id}.{j}" for j in json.loads(run or "{}")]
                if any(not r.state.finished for r in self.registry.get_many(jobs)):
                    self.client.zadd(finished, {run_id: now})
                    continue
                if run is not None:
                    self.delete(run_id)
                    dropped += 1
        return dropped


def run_step(record: JobRecord) -> tuple[str, list[str]] | None:
    """The run script function a finished pipeline job's state calls for, with its arguments after the
    run id and the time (the job; for an end without success also the step it takes, so the run shows
    a cancelled job cancelled once its record is gone), or None (not a pipeline job, or a state that
    moves nothing)."""
    job = record.pipeline_job
    if not (record.pipeline_id and job):
        return None
    if record.state is JobState.SUCCEEDED:
        return "run_succeeded", [job]
    if record.state in (JobState.FAILED, JobState.DEAD, JobState.CANCELLED):
        return "run_failed", [job, Step.CANCELLED if record.state is JobState.CANCELLED else Step.FAILED]
    return None


def holding(run_id: str, status: JobStatus) -> str:
    """Why job ``status`` of the run has no record (it has not started), and what to do."""
    name = f"job {run_id}.{status.job_id}"
    if status.blocked_by:
        return (
            f"{name} has not started: it is blocked by {status.blocked_by}; retry "
            f"{run_id}.{status.blocked_by}, or re-run every failed and blocked job of the run "
            f"with `trainq pipeline resume {run_id}`"
        )
    if status.waiting_for:
        return f"{name} has not started: it is waiting for {', '.join(status.waiting_for)}"
    if status.state == JobState.QUEUED:
        return f"{name} has not started: its dependencies succeeded and it is being queued"
    return (
        f"{name} is {status.state}; re-run the failed and blocked jobs of its run with "
        f"`trainq pipeline resume {run_id}`"
    )


def _text(raw: Any) -> dict[str, str]:
    """A Redis hash reply decoded to text."""
    return {k.decode(): v.decode() for k, v in raw.items()}


def _run_status(run_id: str, run: dict[str, str], jobs: list[JobStatus]) -> RunStatus:
    finished = float(run["finished_at"]) if run.get("finished_at") else None
    return RunStatus(
        id=run_id,
        pipeline_id=run["pipeline_id"],
        state=RunState(run["state"]),
        source=run.get("source", ""),
        created_at=float(run["created_at"]),
        finished_at=finished,
        jobs=jobs,
    )


@lru_cache(maxsize=1)
def get_runs() -> Runs:
    """The process's pipeline runs, on the process's registry."""
    return Runs(get_registry())
