"""Schedules: cron or interval rules that submit a job or start a pipeline, run by Celery Beat.

Schedules are celery-redbeat entries in Redis, so they survive restarts and ``celery -A trainq
beat`` picks up every change on its next tick; redbeat's lock keeps a second Beat waiting
instead of submitting duplicates. Static schedules come from the module named by
``TRAINQ_BEAT_SCHEDULE_MODULE`` (``beat_schedule.py``), loaded by name when Beat starts.
Each run is an ordinary job tagged ``schedule=<name>``, or a pipeline run whose jobs all are. Runs
may overlap, as in cron; a schedule with ``overlap="skip"`` skips a due time while its previous run
is still going (cron's ``flock -n`` habit), and counts the skips.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import redis
from celery import Celery
from celery.schedules import BaseSchedule, schedstate
from celery.schedules import schedule as interval
from celery.utils.imports import cwd_in_path
from croniter import CroniterBadDateError, croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder
from redbeat.schedulers import RedBeatScheduler, RedBeatSchedulerEntry, ensure_conf, get_redis

from trainq.celery import EXIT_BAD_SETTING, app
from trainq.errors import InvalidInput, InvalidSetting, ScheduleError, TrainqError
from trainq.inputs.durations import format_duration, parse_duration
from trainq.job.types import TASK_PREFIX, get_job_type
from trainq.pipelines.dag import PIPELINE_ID_FIELDS
from trainq.pipelines.pipeline import Pipeline, load_pipeline
from trainq.pipelines.runs import get_runs
from trainq.settings import get_settings
from trainq.store.registry import get_registry

log = logging.getLogger("trainq.schedules")

#: The entry task of pipeline schedules: Beat starts the pipeline run itself (no worker needed).
PIPELINE_TASK = "trainq.schedules.pipeline"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
#: Redis hash field (beside redbeat's ``definition`` and ``meta``) holding the last run.
LAST_RUN_FIELD = "trainq_last_run"
#: Redis hash field holding the last failed run, until a run is submitted again.
LAST_ERROR_FIELD = "trainq_last_error"
#: Redis hash field holding the last skipped run: when, and the run still going then.
LAST_SKIP_FIELD = "trainq_last_skip"
#: Redis hash field counting the skipped runs.
SKIPS_FIELD = "trainq_skips"
#: Prefix of the Redis hash fields naming a ``skip`` schedule's runs not yet seen finished (one field
#: each, so Beat and ``schedule run`` add and remove them without reading each other's writes).
RUN_FIELD_PREFIX = "trainq_run:"
#: The entry option holding the overlap policy; absent (entries stored before it existed too) means allow.
OVERLAP_OPTION = "overlap"
#: The shortest interval a schedule may have, in seconds.
SHORTEST_EVERY_S = 1.0
#: Most characters of a failed run's error kept and logged.
ERROR_MAX_CHARS = 500
#: tz database files that are no IANA zone: the host's zone, POSIX rules' template, a placeholder.
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


class Overlap(StrEnum):
    """Whether a due run starts while the schedule's previous run is still going."""

    ALLOW = "allow"  # as cron and Celery Beat: every due time submits a run
    SKIP = "skip"  # skip the due time while a run is queued, running or retrying (``flock -n``)


class ScheduleSpec(BaseModel):
    """A schedule as written in ``beat_schedule.py`` or given to ``trainq schedule create``."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = None
    every: str | float | None = None
    timezone: str | None = None
    type: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    #: A pipeline file's path, or its definition inline (the only form trainq web accepts).
    pipeline: str | dict[str, Any] | None = None
    priority: int | None = Field(default=None, ge=0, le=9)
    enabled: bool = True
    overlap: Overlap = Overlap.ALLOW


class ScheduleInfo(BaseModel):
    """What ``trainq schedule list`` and trainq web show of one schedule (``SecretStr`` fields masked)."""

    name: str
    when: str
    cron: str | None = None
    every_s: float | None = None
    timezone: str | None = None
    type: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    pipeline: str | None = None
    priority: int | None = None
    enabled: bool
    static: bool
    last_run_at: float | None = None
    last_run_id: str | None = None
    #: When a run last failed to be submitted, and why (cleared by the next run submitted).
    last_error_at: float | None = None
    last_error: str | None = None
    overlap: Overlap = Overlap.ALLOW
    #: Due times skipped because a run was still going, the last one's time and that run's id.
    skipped: int = 0
    last_skipped_at: float | None = None
    last_skipped_for: str | None = None
    next_run_at: float | None = None


class CronSchedule(BaseSchedule):
    """A cron expression read by croniter in its own time zone (wall clock, across DST changes).

    Celery's crontab uses the app's one time zone and redbeat stores none, hence this class. As in
    cron, a rule of fixed times (``0 2 * * *``) runs once when the clocks go back: the repeated hour's
    second pass (``fold``) is skipped, while one whose minute or hour field starts with ``*`` runs by
    the clock in both.
    """

    def __init__(
        self, expr: str, timezone: str = "UTC", nowfun: Any = None, app: Celery | None = None
    ) -> None:
        super().__init__(nowfun=nowfun, app=app)
        self.expr = expr
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self.fixed_time = _fixed_time(expr)

    def next_run(self, after: datetime) -> datetime:
        """The first time strictly after ``after`` at which the expression fires."""
        times = croniter(self.expr, after.astimezone(self.zone))
        result: datetime = times.get_next(datetime)
        while self.fixed_time and result.astimezone(self.zone).fold:  # its first pass ran already
            result = times.get_next(datetime)
        return result

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        """Time from now to the first run after ``last_run_at`` (negative when overdue)."""
        now: datetime = self.now()  # Celery's schedule base class is untyped
        return self.next_run(self.maybe_make_aware(last_run_at)) - now

    def is_due(self, last_run_at: datetime) -> schedstate:
        """Celery's ``(due, seconds until the next check)``."""
        remaining_s = self.remaining_estimate(last_run_at).total_seconds()
        if remaining_s > 0:
            return schedstate(False, remaining_s)
        now = self.now()
        return schedstate(True, (self.next_run(now) - now).total_seconds())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CronSchedule):
            return (self.expr, self.timezone) == (other.expr, other.timezone)
        return NotImplemented

    def __repr__(self) -> str:
        return f"<cron {self.expr} {self.timezone}>"


def _fixed_time(expr: str) -> bool:
    """Whether neither the minute nor the hour field of ``expr`` starts with ``*`` (cron's own test)."""
    fields = expr.split()
    if len(fields) == 1:  # an alias: @hourly is "0 * * * *", the others fix their hour
        return bool(croniter(expr).expanded[1] != ["*"])
    return not (fields[0].startswith("*") or fields[1].startswith("*"))


class _Encoder(RedBeatJSONEncoder):
    """redbeat's JSON codec plus CronSchedule."""

    def default(self, obj: Any) -> Any:
        if isinstance(obj, CronSchedule):
            return {"__type__": "trainq_cron", "expr": obj.expr, "timezone": obj.timezone}
        return super().default(obj)


class _Decoder(RedBeatJSONDecoder):
    def dict_to_object(self, d: dict[str, Any]) -> Any:
        if d.get("__type__") == "trainq_cron":
            return CronSchedule(d["expr"], d["timezone"])
        return super().dict_to_object(d)


class ScheduleEntry(RedBeatSchedulerEntry):
    """A redbeat entry whose definition may hold a CronSchedule."""

    @staticmethod
    def decode_definition(definition: str) -> dict[str, Any]:
        """Parse a stored definition, CronSchedule included."""
        result: dict[str, Any] = json.loads(definition, cls=_Decoder)
        return result

    def save(self) -> ScheduleEntry:
        """Store the definition (keeping any run history); redbeat's own save hard-codes its codec."""
        definition = {
            "name": self.name,
            "task": self.task,
            "args": self.args,
            "kwargs": self.kwargs,
            "options": self.options,
            "schedule": self.schedule,
            "enabled": self.enabled,
        }
        with get_redis(self.app).pipeline() as pipe:
            pipe.hset(self.key, "definition", json.dumps(definition, cls=_Encoder))
            pipe.hsetnx(self.key, "meta", json.dumps({"last_run_at": self.last_run_at}, cls=_Encoder))
            pipe.zadd(self.app.redbeat_conf.schedule_key, {self.key: self.score})
            pipe.execute()
        return self


class Scheduler(RedBeatScheduler):
    """redbeat's scheduler plus trainq's static schedules, job/pipeline runs and catch-up policy."""

    Entry = ScheduleEntry

    def setup_schedule(self) -> None:
        """Install the static schedules (redbeat drops the ones removed from the module). On a bad
        one, or a module not found, Beat stops before it changes anything: one line, exit 2."""
        try:
            self.app.conf.beat_schedule = static_entries(get_settings().beat_schedule_module, self.app)
        except TrainqError as exc:
            print(f"error: {exc}", file=sys.__stderr__, flush=True)  # Celery sends sys.stderr to its log
            raise SystemExit(EXIT_BAD_SETTING) from None
        super().setup_schedule()

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One Beat round; while no Redis master answers (a Sentinel failover), wait and retry.

        The lock stays ours unless it expires meanwhile (``TRAINQ_BEAT_LOCK_S``, 30 s); then the
        next extend fails with LockNotOwnedError and this Beat stops, as redbeat intends.
        """
        try:
            return float(super().tick(*args, **kwargs))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("beat: Redis master unreachable (%s); retrying", exc)
            return float(self.max_interval)

    def maybe_due(self, entry: ScheduleEntry, **kwargs: Any) -> float:
        """Run ``entry`` if due; with catch-up off, skip a run missed while Beat was down."""
        late = entry.schedule.remaining_estimate(entry.last_run_at) if entry.last_run_at else timedelta(0)
        if (
            entry.enabled
            and not get_settings().schedule_catch_up
            and -late.total_seconds() > 2 * self.max_interval
        ):
            log.warning(
                "schedule %s: skipping the run due %s ago (catch-up is off)",
                entry.name,
                format_duration(-late.total_seconds()),
            )
            entry.reschedule()
            return float(entry.is_due()[1])
        result: float = super().maybe_due(entry, **kwargs)
        return result

    def apply_async(
        self, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> str | None:
        """Submit one run of ``entry`` (advancing its schedule first, as Celery Beat does); a run
        trainq refuses (its pipeline file is gone or now invalid) is logged in one line and recorded
        on the schedule, and Beat goes on. With overlap ``skip``, a run still going skips this one."""
        entry = self.reserve(entry) if advance else entry
        going = run_going(entry)
        if going is not None:
            skip_run(entry, going)
            return None
        try:
            return submit_run(entry, producer=producer)
        except TrainqError as exc:
            log.error("schedule %s: run not submitted: %s", entry.name, error_text(exc))
            return None


def build_entry(name: str, spec: ScheduleSpec | dict[str, Any], app: Celery = app) -> ScheduleEntry:
    """Validate ``spec`` completely (timing, job type and config, or pipeline file) into an entry.

    Raises ScheduleError naming the schedule and the problem; nothing is stored.
    """
    if not NAME.fullmatch(name):
        raise ScheduleError(
            name, "names are 1-100 letters, digits and _ . : - (starting with a letter or digit)"
        )
    try:
        spec = ScheduleSpec.model_validate(spec)
        when = _timing(spec)
        task, kwargs, options = _target(name, spec)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'schedule'}: {e['msg']}" for e in exc.errors()
        )
        raise ScheduleError(name, problems) from None
    except InvalidInput as exc:
        raise ScheduleError(name, str(exc)) from None
    if spec.overlap is Overlap.SKIP:  # stored only when set: an entry of the release before reads the same
        options[OVERLAP_OPTION] = spec.overlap.value
    return ScheduleEntry(
        name=name, task=task, schedule=when, kwargs=kwargs, options=options, enabled=spec.enabled, app=app
    )


def _timing(spec: ScheduleSpec) -> BaseSchedule:
    if (spec.cron is None) == (spec.every is None):
        raise InvalidInput("give exactly one of cron or every")
    if spec.every is not None:
        if spec.timezone:
            raise InvalidInput("a timezone applies to cron schedules only")
        seconds = parse_duration(spec.every)
        if not seconds >= SHORTEST_EVERY_S:  # Beat would submit as fast as it can: one typo floods the queue
            raise InvalidInput(f"every must be at least {SHORTEST_EVERY_S:g}s, got {spec.every!r}")
        return interval(timedelta(seconds=seconds))
    expr = " ".join(spec.cron.split())  # type: ignore[union-attr]
    if not croniter.is_valid(expr) or not (expr.startswith("@") or len(expr.split()) == 5):
        raise InvalidInput(
            f"bad cron expression {spec.cron!r}: use 5 fields 'minute hour day-of-month month day-of-week' "
            "(e.g. '0 2 * * *') or @hourly/@daily/@weekly"
        )
    zone = spec.timezone or "UTC"
    if zone not in zone_names():
        raise InvalidInput(f"unknown timezone {zone!r}: use an IANA name such as Europe/Berlin")
    schedule = CronSchedule(expr, zone)
    try:
        schedule.next_run(datetime.now(UTC))
    except CroniterBadDateError:  # e.g. February 30th: Beat would fail on it at every tick
        raise InvalidInput(f"cron expression {spec.cron!r} never matches a date") from None
    return schedule


@lru_cache(maxsize=1)
def zone_names() -> frozenset[str]:
    """The IANA time zones a schedule may name: this host's tz database less its files that are no
    zone, whose meaning changes with the host reading them (``localtime``: the host's own zone)."""
    return frozenset(available_timezones()) - NOT_ZONES


def _target(name: str, spec: ScheduleSpec) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The entry's task, kwargs and options: what each run submits."""
    if (spec.type is None) == (spec.pipeline is None):
        raise InvalidInput("give exactly one of type (with its config) or pipeline")
    if spec.pipeline is not None:
        if spec.config or spec.priority is not None:
            raise InvalidInput(
                "config and priority apply to type schedules; a pipeline file sets its jobs' own"
            )
        if isinstance(spec.pipeline, dict):
            inline_pipeline(spec.pipeline, name).validate()
            return PIPELINE_TASK, {"definition": spec.pipeline}, {}
        path = Path(os.path.abspath(Path(spec.pipeline).expanduser()))  # a symlink's directory, as for a run
        load_pipeline(path).validate()
        return PIPELINE_TASK, {"path": str(path)}, {}
    options: dict[str, Any] = {"tags": {"schedule": name}, "job_name": name}
    if spec.priority is not None:
        options["priority"] = spec.priority
    task = get_job_type(spec.type)  # type: ignore[arg-type]
    task.validate(spec.config)
    return task.name, spec.config, options


def inline_pipeline(definition: Any, name: str) -> Pipeline:
    """The pipeline of an inline definition; its commands run in ``<home>/work``, like posted ones."""
    work = get_settings().home / "work"
    return Pipeline.from_dict(definition, base_dir=work, source=f"schedule {name}")


def schedule_pipeline(entry: ScheduleEntry) -> Pipeline:
    """The pipeline a pipeline schedule starts: its inline definition, or its file read now."""
    if "definition" in entry.kwargs:
        return inline_pipeline(entry.kwargs["definition"], entry.name)
    return load_pipeline(entry.kwargs["path"])


def static_entries(module_name: str, app: Celery = app) -> dict[str, ScheduleEntry]:
    """The static schedules of ``module_name`` (its ``beat_schedule`` dict), looked for as Celery looks
    for worker modules (the working directory first); none when the name is empty.

    A module not found raises InvalidSetting: Beat would otherwise start and remove every static
    schedule it installed before, with their run history.
    """
    if not module_name:
        return {}
    with cwd_in_path():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not (exc.name == module_name or module_name.startswith(f"{exc.name}.")):
                raise  # a module it imports is missing: its code's error
            raise InvalidSetting(
                f"invalid setting TRAINQ_BEAT_SCHEDULE_MODULE: no module named {module_name!r} in the "
                'working directory or on the Python path (set it to "" for no static schedules)'
            ) from None
    specs = getattr(module, "beat_schedule", None)
    if not isinstance(specs, dict):  # a misspelt name would remove every static schedule installed before
        found = "has no beat_schedule" if specs is None else f"has a beat_schedule of {type(specs).__name__}"
        raise InvalidSetting(
            f"invalid setting TRAINQ_BEAT_SCHEDULE_MODULE: module {module_name!r} {found}, not a dict of "
            "schedules"
        )
    return {name: build_entry(name, spec, app) for name, spec in specs.items()}


def submit_run(entry: ScheduleEntry, **send_options: Any) -> str:
    """Submit one run of ``entry`` now: its job, or its pipeline. Returns the job or run id.

    A TrainqError (e.g. the pipeline file is gone) is recorded as the schedule's last error, then raised.
    """
    client = get_redis(entry.app)
    try:
        if entry.task == PIPELINE_TASK:
            pipeline = schedule_pipeline(entry)
            pipeline.base_dir.mkdir(parents=True, exist_ok=True)  # an inline one's work directory
            run_id = pipeline.run(tags={"schedule": entry.name})
        else:
            job_type = entry.task.removeprefix(TASK_PREFIX)
            task = get_job_type(job_type)
            options = {k: v for k, v in entry.options.items() if k != OVERLAP_OPTION}
            run_id = str(task.apply_async(kwargs=entry.kwargs or {}, **options, **send_options).id)
    except TrainqError as exc:
        failed = json.dumps({"at": time.time(), "error": error_text(exc)})
        with contextlib.suppress(redis.RedisError):  # Redis is what failed: the caller reports it
            client.hset(entry.key, LAST_ERROR_FIELD, failed)
        raise
    now = time.time()
    with client.pipeline() as pipe:
        pipe.hset(entry.key, LAST_RUN_FIELD, json.dumps({"at": now, "id": run_id}))
        pipe.hdel(entry.key, LAST_ERROR_FIELD)
        if overlap(entry) is Overlap.SKIP:
            pipe.hset(entry.key, RUN_FIELD_PREFIX + run_id, now)
        pipe.execute()
    log.info("schedule %s submitted %s", entry.name, run_id)
    return run_id


def overlap(entry: ScheduleEntry) -> Overlap:
    """``entry``'s overlap policy (``allow`` for an entry stored without one)."""
    return Overlap(entry.options.get(OVERLAP_OPTION, Overlap.ALLOW))


def run_going(entry: ScheduleEntry) -> str | None:
    """With overlap ``skip``, the oldest run of ``entry`` still going (a job queued, running or
    retrying, a pipeline run not finished), else None; the runs seen finished are forgotten."""
    if overlap(entry) is not Overlap.SKIP:
        return None
    client = get_redis(entry.app)  # redbeat's: replies decoded
    submitted = {
        field.removeprefix(RUN_FIELD_PREFIX): float(at)
        for field, at in client.hgetall(entry.key).items()
        if field.startswith(RUN_FIELD_PREFIX)
    }
    if entry.task == PIPELINE_TASK:
        ended = {run_id for run_id in submitted if get_runs().ended(run_id)}
    else:
        going = {r.id for r in get_registry().get_many(submitted) if not r.state.finished}
        ended = set(submitted) - going  # a record expired or deleted is no run going either
    if ended:
        client.hdel(entry.key, *(RUN_FIELD_PREFIX + run_id for run_id in ended))
    still = sorted((at, run_id) for run_id, at in submitted.items() if run_id not in ended)
    return still[0][1] if still else None


def skip_run(entry: ScheduleEntry, going: str) -> None:
    """Log and count a due time of ``entry`` skipped because its run ``going`` is still going."""
    log.warning("schedule %s: run skipped: its run %s is still going (overlap is skip)", entry.name, going)
    with get_redis(entry.app).pipeline() as pipe:
        pipe.hset(entry.key, LAST_SKIP_FIELD, json.dumps({"at": time.time(), "for": going}))
        pipe.hincrby(entry.key, SKIPS_FIELD, 1)
        pipe.execute()


def error_text(exc: Exception) -> str:
    """``exc``'s message on one line, cut at ``ERROR_MAX_CHARS``."""
    text = " ".join(str(exc).split())
    return text if len(text) <= ERROR_MAX_CHARS else text[: ERROR_MAX_CHARS - 1] + "…"


# -- operations on stored schedules ----------------------------------------------------


def create(name: str, spec: ScheduleSpec | dict[str, Any], app: Celery = app) -> ScheduleEntry:
    """Validate and store a new schedule; a running Beat picks it up on its next tick."""
    entry = build_entry(name, spec, app)
    client = get_redis(app)
    if client.hexists(entry.key, "definition"):
        raise ScheduleError(name, "already exists; delete it first or choose another name")
    _forget(name, app)  # what the previous holder of the name left: see delete
    return entry.save()


def get(name: str, app: Celery = app) -> ScheduleEntry:
    """The stored schedule ``name``; raises ScheduleError if there is none."""
    ensure_conf(app)
    try:
        entry: ScheduleEntry = ScheduleEntry.from_key(ScheduleEntry.generate_key(app, name), app=app)
    except KeyError:
        raise ScheduleError(name, "no such schedule (see `trainq schedule list`)") from None
    return entry


def set_enabled(name: str, enabled: bool, app: Celery = app) -> bool:
    """Enable or disable a schedule (a disabled one, once enabled, next runs at its next time from now);
    False when it already was: its clock is left alone, so an idempotent "ensure enabled" never delays it."""
    entry = get(name, app)
    if entry.enabled == enabled:
        return False
    entry.enabled = enabled
    entry.save()
    if enabled:
        entry.reschedule()  # runs skipped while disabled are not caught up
    return True


def delete(name: str, app: Celery = app) -> None:
    """Remove a schedule (a static one returns when Beat restarts with it in the module)."""
    get(name, app)  # raises ScheduleError if there is none
    _forget(name, app)


def _forget(name: str, app: Celery) -> None:
    """Remove ``name``'s entry, its run history (a Beat holding a loaded copy may write it after a
    delete) and its mark as static: a schedule created under the name later is a runtime one, which
    a Beat start without the name in its module keeps."""
    key = ScheduleEntry.generate_key(app, name)
    with get_redis(app).pipeline() as pipe:
        pipe.zrem(app.redbeat_conf.schedule_key, key)
        pipe.delete(key)
        pipe.srem(app.redbeat_conf.statics_key, name)
        pipe.execute()


def run_now(name: str, app: Celery = app) -> str:
    """Submit one run of schedule ``name`` now, whether enabled or not; its timing is unchanged."""
    return submit_run(get(name, app))


def entries(app: Celery = app) -> list[ScheduleEntry]:
    """Every stored schedule, by name."""
    client = get_redis(app)
    found = []
    for key in client.zrange(app.redbeat_conf.schedule_key, 0, -1):
        try:
            found.append(ScheduleEntry.from_key(key, app=app))
        except KeyError:
            continue
    return sorted(found, key=lambda e: e.name)


def info(entry: ScheduleEntry) -> ScheduleInfo:
    """Describe ``entry``: its rule, what it submits, its last and next run."""
    client = get_redis(entry.app)
    raw_last, raw_error, raw_skip, skips = client.hmget(
        entry.key, [LAST_RUN_FIELD, LAST_ERROR_FIELD, LAST_SKIP_FIELD, SKIPS_FIELD]
    )
    last, failed = json.loads(raw_last or "{}"), json.loads(raw_error or "{}")
    skip = json.loads(raw_skip or "{}")
    when = entry.schedule
    fields: dict[str, Any] = {}
    if isinstance(when, CronSchedule):
        fields.update(when=f"cron {when.expr} ({when.timezone})", cron=when.expr, timezone=when.timezone)
    else:
        fields.update(when=f"every {format_duration(when.seconds)}", every_s=when.seconds)
    if entry.task == PIPELINE_TASK:
        inline = entry.kwargs.get("definition")
        fields["pipeline"] = entry.kwargs["path"] if inline is None else f"inline {_pipeline_id(inline)}"
    else:
        job_type = entry.task.removeprefix(TASK_PREFIX)
        fields.update(type=job_type, config=_shown_config(job_type, entry.kwargs))
    return ScheduleInfo(
        name=entry.name,
        priority=entry.options.get("priority"),
        enabled=entry.enabled,
        static=bool(client.sismember(entry.app.redbeat_conf.statics_key, entry.name)),
        last_run_at=last.get("at"),
        last_run_id=last.get("id"),
        last_error_at=failed.get("at"),
        last_error=failed.get("error"),
        overlap=overlap(entry),
        skipped=int(skips or 0),
        last_skipped_at=skip.get("at"),
        last_skipped_for=skip.get("for"),
        next_run_at=next_run_at(entry),
        **fields,
    )


def _shown_config(job_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` through its job type's model, as a job's record shows it (``SecretStr`` masked)."""
    try:
        return get_job_type(job_type).payloads(config)[1]
    except TrainqError:
        return {}  # no longer valid for its type: show nothing rather than raw values


def _pipeline_id(definition: Any) -> str:
    """The id an inline definition names (its only part shown: the rest may hold secrets)."""
    ids = [definition.get(k) for k in PIPELINE_ID_FIELDS] if isinstance(definition, dict) else []
    return next((str(i) for i in ids if i is not None), "?")


def next_run_at(entry: ScheduleEntry) -> float | None:
    """When ``entry`` next runs (epoch seconds; now if overdue), or None while disabled."""
    if not entry.enabled:
        return None
    when, now = entry.schedule, entry.schedule.now()
    last = entry.last_run_at or now
    due = when.next_run(last) if isinstance(when, CronSchedule) else last + when.run_every
    return float(max(due, now).timestamp())
