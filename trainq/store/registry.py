"""The registry: trainq's queryable store of job records, transitions, logs and leases.

Every state change goes through one Lua script (``transition``) so that the record, the
per-state index, the event history and the lease move together, and so that a change can
be *fenced*: it applies only if the job is still in an allowed state and still on the
delivery (``fence``) the caller holds. A stale worker therefore can never overwrite the
record of a job that was recovered, cancelled or finished elsewhere.

Listing reads sorted sets scored by creation time, so its cost depends on the page asked for,
not on how many jobs were ever recorded. A job is in two beside its tags': its state's (a
finished standalone job: its state's retention set instead) and its route's (queue and type).
"""

from __future__ import annotations

import heapq
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from functools import lru_cache
from itertools import islice
from typing import Any, TypedDict, Unpack

import redis
from kombu.utils import json as kombu_json
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import SentinelConnectionPool

from trainq.errors import BrokerUnavailable, JobNotFound, KeyInUse, OutcomeUnknown
from trainq.job.record import (
    CLEAN_SUBMIT_REASON,
    FINISHED_STATES,
    HISTORY_FIELD,
    IMPLIED_EVENTS_VERSION,
    VERSION_FIELD,
    WAITING_STATES,
    JobEvent,
    JobRecord,
    JobState,
    encode_fields,
    implied_events,
)
from trainq.settings import Settings, get_settings, redis_py_url
from trainq.store import lua, sentinel
from trainq.store.forking import hold_across_fork
from trainq.store.keys import Keys

log = logging.getLogger("trainq.store.registry")

#: The record's hash field holding its idempotency key (not part of JobRecord), so the key goes with it.
IDEMPOTENCY_FIELD = "idempotency_key"
#: Fields the drop script needs to name a record's keys.
_DROP_FIELDS = ("state", "type", "queue", "tags", IDEMPOTENCY_FIELD)

#: A claim event's attempt, filled in from the record by the script.
ATTEMPT_FROM_RECORD = -1
#: The record's hash field holding the token of the claim that started its running attempt (not part
#: of JobRecord): the same claim sent again after its answer was lost is given the record again.
CLAIM_FIELD = "claim"
#: Random bytes in a claim's token: two claims of one job's delivery never share one (48 bits), and a
#: finished record keeps it in about 20 bytes (a finished job's bytes are a #13 target).
CLAIM_TOKEN_BYTES = 6
#: The finished states as the transition script reads them (a job leaving one leaves its retention set).
_FINISHED_ARG = ",".join(sorted(s.value for s in FINISHED_STATES))

LIST_PAGE = 200
#: How long listings say the registry's Redis restarted without its data: long enough to span a weekend.
DATA_LOSS_NOTE_S = 3 * 24 * 3600
#: Values one ZADD of the create script takes at most (Lua's unpack has a limit): 500 members.
_MEMBERS_PER_CALL = 1000


def stats_field(queue: str, job_type: str, state: str) -> str:
    """The counters hash's field of the jobs of ``job_type`` sent to ``queue`` in ``state``: the JSON
    array the scripts build from the record's stored queue and type, byte for byte (both JSON-encoded
    by ``encode_fields``)."""
    return f'[{json.dumps(queue)},{json.dumps(job_type)},"{state}"]'


#: A Redis command sent with the registry's writes, named as redis-py names it: ``("lpush", key, value)``.
Command = tuple[Any, ...]


def trimmed_lines(info: dict[str, Any], appended: int | None) -> int:
    """Lines the cap trimmed from a log stream, given its XINFO STREAM reply and the job's own count
    of appended lines (None for a log written before it was kept). Redis 7 counts the stream's
    entries (``entries-added``); Redis 6 does not, so the job's count stands in."""
    added = info.get("entries-added", appended)
    return 0 if added is None else max(int(added) - int(info["length"]), 0)


class Effects:
    """Writes that commit with a job's finish in the same script call, and only if the finish does.

    Each is a Redis command, or a pipeline run's step (``run_succeeded``/``run_failed`` with the run
    script's keys and args). Their replies come back in order (see ``Registry.finish``).
    """

    def __init__(self) -> None:
        self.writes: list[Any] = []

    def __len__(self) -> int:
        return len(self.writes)

    def command(self, *args: str | int | float) -> None:
        """Queue one Redis command, e.g. ``command("HINCRBY", key, field, 1)``."""
        self.writes.append([a if isinstance(a, str) else repr(a) for a in args])

    def run_step(self, step: str, keys: list[str], args: list[str]) -> None:
        """Queue a pipeline run's step: the Lua function ``step`` of the run scripts."""
        self.writes.append([step, keys, args])


class JobFilter(TypedDict, total=False):
    """The filters of ``trainq list``: a job is listed when it matches every one given."""

    state: JobState | None
    job_type: str | None
    queue: str | None
    tag: str | None


class Registry:
    """Job records in Redis under one key prefix."""

    _master_run: str | None = None  # the server run id this process saw last (``master_changed``)

    def __init__(self, client: redis.Redis, keys: Keys, log_max_lines: int = 20_000) -> None:
        self.client = client
        self.keys = keys
        self.log_max_lines = log_max_lines
        self.min_replicas = 0
        self.replica_wait_ms = 1000
        self._transition = client.register_script(
            lua.source("run_common", "create_common", "run_succeeded", "run_failed", "transition")
        )
        self._drop = client.register_script(lua.source("drop"))
        self._create = client.register_script(lua.source("create_common", "create"))

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        """A registry on the settings' Redis with their key prefix."""
        # A hung server (SIGSTOPped, partitioned) accepts connections but never answers: only a
        # read timeout notices it, and a timed-out command is not retried (each retry waits again).
        if sentinel.is_sentinel(settings.registry()):
            client = sentinel.master_client(
                settings.registry(),
                settings.sentinel_master,
                settings.sentinel_password,
                socket_connect_timeout=settings.connect_timeout_s,
                socket_timeout=settings.connect_timeout_s,
                health_check_interval=10,
            )
        else:
            client = redis.Redis.from_url(
                redis_py_url(settings.registry()),
                socket_connect_timeout=settings.connect_timeout_s,
                socket_timeout=settings.connect_timeout_s,
                health_check_interval=10,
                retry=Retry(
                    ExponentialBackoff(cap=0.5, base=0.05), 1, supported_errors=(redis.ConnectionError,)
                ),
            )
        hold_across_fork(client.connection_pool)
        registry = cls(client, Keys(settings.key_prefix), settings.log_max_lines)
        registry.min_replicas, registry.replica_wait_ms = settings.min_replicas, settings.replica_wait_ms
        return registry

    @property
    def url(self) -> str:
        """The Redis this registry talks to, for messages."""
        kwargs = self.client.connection_pool.connection_kwargs
        if isinstance(self.client.connection_pool, SentinelConnectionPool):
            return f"Sentinel master {self.client.connection_pool.service_name!r}"
        if "path" in kwargs:
            return f"unix://{kwargs['path']}"
        return f"redis://{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db', 0)}"

    def ping(self, role: str = "registry", url: str | None = None) -> None:
        """Raise BrokerUnavailable unless Redis answers, naming it as ``role`` at ``url`` (default: the
        registry at ``self.url``; a worker names the broker's URL as configured, when it is both)."""
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise BrokerUnavailable(url or self.url, sentinel.reason(exc), role) from exc

    # -- records -----------------------------------------------------------------------

    def create(
        self,
        record: JobRecord,
        idempotency_key: str | None = None,
        message: dict[str, Any] | None = None,
        reason: str = CLEAN_SUBMIT_REASON,
        commands: Iterable[Command] = (),
        canvas: dict[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """Store a new record; with a key already used, return that job's id instead (raise KeyInUse
        when that job is of another type: a key names one job of one type, never a stranger's).

        ``message`` is the payload as sent when it differs from ``record.payload`` (secret fields
        revealed); it is kept apart so re-deliveries carry it and no listing shows it. ``canvas`` (a
        canvas member's Celery options) is kept likewise. ``commands`` (the job's broker message) go
        in the same transaction, only if the record is stored.
        Returns ``(job_id, created)``.
        """
        key = self.keys.idempotency(idempotency_key) if idempotency_key is not None else None
        writes: list[Command] = []
        if key is not None:
            writes.append(("SET", key, record.id))  # also re-claims the key of a deleted first job
            writes.append(("HSET", self.keys.job(record.id), IDEMPOTENCY_FIELD, json.dumps(idempotency_key)))
        writes += self._kept(record.id, message, canvas)
        writes += commands

        def claim_and_add(pipe: Any) -> str | None:
            # Runs under WATCH of the key: a concurrent claim between this read and the write
            # makes the transaction fail and run again, so one key never yields two jobs.
            found = pipe.get(key)
            if found is not None and (held_by := pipe.hget(self.keys.job(found.decode()), "type")):
                if (job_type := json.loads(held_by)) != record.type:
                    raise KeyInUse(str(idempotency_key), job_type, found.decode())
                return str(found.decode())
            pipe.multi()
            self._add_many(pipe, [record], reason, writes)
            return None

        try:
            if key is None:
                existing = None
                self._add_many(self.client, [record], reason, writes)
            else:
                existing = self.client.transaction(claim_and_add, key, value_from_callable=True)
            if not existing:
                self.await_replicas([record.id])
        except redis.TimeoutError as exc:  # sent, perhaps: a frozen server runs it when it thaws
            raise OutcomeUnknown(self.url, str(exc), "registry", record.id) from exc
        except redis.RedisError as exc:
            raise BrokerUnavailable(self.url, str(exc), "registry") from exc
        return (existing, False) if existing else (record.id, True)

    def _kept(
        self, job_id: str, message: dict[str, Any] | None, canvas: dict[str, Any] | None
    ) -> list[Command]:
        """The writes keeping a job's message payload and canvas options beside its record (each if given)."""
        writes: list[Command] = []
        if message is not None:
            writes.append(("SET", self.keys.message(job_id), json.dumps(message)))
        if canvas is not None:  # signatures may hold what plain JSON cannot (an eta): Celery's own encoding
            writes.append(("SET", self.keys.canvas(job_id), json.dumps(canvas, cls=kombu_json.JSONEncoder)))
        return writes

    def keep(self, job_id: str, message: dict[str, Any] | None, canvas: dict[str, Any] | None) -> None:
        """Keep a recorded job's message payload and canvas options beside its record (each if given):
        a blocked chain step gets them once its chain goes on."""
        self.write(self._kept(job_id, message, canvas))

    def kept_message(self, record: JobRecord) -> tuple[dict[str, Any], dict[str, Any]]:
        """The payload to send for ``record`` (the kept message payload, else the stored one) and its
        kept canvas options (none for a job in no canvas, or recorded before they were kept)."""
        payload, canvas = self.client.mget(self.keys.message(record.id), self.keys.canvas(record.id))
        options = json.loads(canvas, object_hook=kombu_json.object_hook) if canvas else {}
        return (json.loads(payload) if payload else record.payload), options

    def write(self, commands: Iterable[Command]) -> bool:
        """Run ``commands`` (a delivery's broker writes, collected by the send path) in one round trip."""
        pipe = self.client.pipeline(transaction=True)
        for command in commands:
            pipe.execute_command(*command)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise BrokerUnavailable(self.url, str(exc), "registry") from exc
        return True

    def unrecorded(self, records: Iterable[JobRecord]) -> set[str]:
        """The ids among ``records`` that have no record yet, in one round trip."""
        records = list(records)
        try:
            check = self.client.pipeline(transaction=False)
            for record in records:
                check.exists(self.keys.job(record.id))
            found = check.execute()
        except redis.RedisError as exc:
            raise BrokerUnavailable(self.url, str(exc), "registry") from exc
        return {r.id for r, exists in zip(records, found, strict=True) if not exists}

    def create_many(
        self,
        records: Iterable[JobRecord],
        commands: Iterable[Command] = (),
        unless: tuple[str, str, str] | None = None,
    ) -> bool:
        """Store new records, and ``commands`` (their broker messages), in one script call.

        False, and nothing written, when the hash field ``unless`` names (key, field, value) holds
        that value: a group of a pipeline run cancelled meanwhile is never recorded or sent; or when
        one of the records exists: written meanwhile by another process (a run's sweep and the
        finish that released the group), it is never written over.
        """
        records = list(records)
        try:
            if self._add_many(self.client, records, writes=commands, unless=unless, fresh=True) is None:
                return False
            self.await_replicas([r.id for r in records])
        except redis.RedisError as exc:
            raise BrokerUnavailable(self.url, str(exc), "registry") from exc
        return True

    def await_replicas(self, job_ids: list[str]) -> None:
        """Return once ``min_replicas`` replicas hold every write so far; else drop ``job_ids`` and raise.

        WAIT counts the writes of its own connection, so a mark is written on that connection first:
        replication is one ordered stream, so the mark's acknowledgement covers every earlier write.
        """
        if self.min_replicas <= 0 or not job_ids:
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.keys.replication_mark(), job_ids[-1])
        pipe.wait(self.min_replicas, self.replica_wait_ms)
        acked = pipe.execute()[-1]
        if acked < self.min_replicas:
            self.delete_many(job_ids)
            raise BrokerUnavailable(
                self.url,
                f"only {acked} of {self.min_replicas} replicas confirmed the record within "
                f"{self.replica_wait_ms} ms (TRAINQ_MIN_REPLICAS); nothing was submitted",
                "registry",
            )

    def master_changed(self) -> bool:
        """True the first time any process sees a new Redis master run id (a failover or a restart).

        A new run id with no stored one, where this process saw another before, is a server that
        restarted without its data: logged as an error, since every job recorded before is gone, and
        noted for ``DATA_LOSS_NOTE_S`` so that listings say so (``data_loss``). A server no process saw
        before (a new install) is no loss.
        """
        run_id = str(self.client.info("server")["run_id"])
        previous = self.client.set(self.keys.master_run(), run_id, get=True)
        if previous is None and self._master_run not in (None, run_id):
            log.error(
                "the registry's Redis at %s restarted without its data: every job recorded before is gone "
                "(keep its data across restarts: appendonly yes, docs/reliability.md)",
                self.url,
            )
            self.client.set(self.keys.data_loss(), repr(time.time()), ex=DATA_LOSS_NOTE_S, nx=True)
        self._master_run = run_id
        return previous is not None and previous.decode() != run_id

    def data_loss(self) -> str | None:
        """One line for listings, while a worker's note that this Redis restarted without its data
        lasts: when it was seen, and that the jobs recorded before are gone; else None."""
        seen = self.client.get(self.keys.data_loss())
        if seen is None:
            return None
        at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(seen)))
        return (
            f"the registry's Redis restarted without its data (seen {at}): every job recorded before "
            "then is gone (keep its data across restarts: appendonly yes, docs/reliability.md)"
        )

    def _add_many(
        self,
        client: Any,
        records: list[JobRecord],
        reason: str = CLEAN_SUBMIT_REASON,
        writes: Iterable[Command] = (),
        unless: tuple[str, str, str] | None = None,
        fresh: bool = False,
    ) -> Any:
        """Write new records, their first events (``reason``), index entries and counters, then
        ``writes``, in one script call on ``client`` (a pipeline, or not), unless the hash field
        ``unless`` names holds its value or, if ``fresh``, one of the records exists; the script's
        reply (None when refused)."""
        doc = self.creation(records, reason, writes)
        if unless is not None:
            doc["unless"] = list(unless)
        if fresh:
            doc["fresh"] = True
        return self._create(args=[json.dumps(doc)], client=client)

    def creation(
        self, records: list[JobRecord], reason: str = CLEAN_SUBMIT_REASON, writes: Iterable[Command] = ()
    ) -> dict[str, Any]:
        """The create script's document (``lua/create_common.lua``) for new ``records``, their first
        events, index entries, counters and ``writes``. Each index and counter is written once for
        all the records. A job queued by a plain submit stores no event: its record implies it
        (``implied_events``). A delayed job's lease runs out a lease after it is due."""
        indexes: dict[str, list[str]] = {}
        counts: Counter[str] = Counter()
        rows = []
        for record in records:
            fields = record.to_hash()
            event = ""
            if record.state is not JobState.QUEUED or reason != CLEAN_SUBMIT_REASON:
                event = JobEvent(state=record.state, at=record.created_at, reason=reason).encoded()
                fields[HISTORY_FIELD] = "1"
            flat = [part for item in fields.items() for part in item]
            rows.append([self.keys.job(record.id), flat, self.keys.events(record.id), event])
            state = record.state.value
            for index in [
                *self._indexes(record.type, record.queue, record.tags),
                self.keys.index_state(state),
            ]:
                indexes.setdefault(index, []).extend((repr(record.created_at), record.id))
            if record.state is JobState.DELAYED and record.eta is not None:  # held by a worker until due:
                overdue = record.eta + get_settings().lease_s  # a reaper re-sends it if that worker dies
                indexes.setdefault(self.keys.leases(), []).extend((repr(overdue), record.id))
            counts[stats_field(record.queue, record.type, state)] += 1
        return {
            "records": rows,
            "zadd": [
                [index, *members[n : n + _MEMBERS_PER_CALL]]
                for index, members in indexes.items()
                for n in range(0, len(members), _MEMBERS_PER_CALL)
            ],
            "hincrby": [[self.keys.stats(), field, str(count)] for field, count in counts.items()],
            "writes": [[str(part) for part in command] for command in writes],
        }

    def _indexes(self, job_type: str, queue: str, tags: dict[str, str]) -> list[str]:
        """The sorted sets that list a job of ``job_type`` on ``queue`` with ``tags`` (beside its state's)."""
        tagged = (self.keys.index_tag(f"{k}={v}") for k, v in tags.items())
        return [self.keys.index_route(queue, job_type), *tagged]

    def find(self, job_id: str) -> JobRecord | None:
        """The record of ``job_id``, or None."""
        raw = self.client.hgetall(self.keys.job(job_id))
        return JobRecord.from_hash(raw) if raw else None

    def get(self, job_id: str) -> JobRecord:
        """The record of ``job_id``; raises JobNotFound."""
        record = self.find(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record

    def get_many(self, job_ids: Iterable[str]) -> list[JobRecord]:
        """Records of ``job_ids`` in one round trip, skipping ids with no record."""
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self.keys.job(job_id))
        return [JobRecord.from_hash(raw) for raw in pipe.execute() if raw]

    def delete(self, job_id: str) -> None:
        """Remove a record, its history, log, lease and index entries."""
        self.delete_many([job_id])

    def delete_many(self, job_ids: Iterable[str]) -> None:
        """Remove records as ``delete`` does, a batch per round trip."""
        pending = list(job_ids)
        while pending:  # a record whose state changed between the read and the drop is read again
            done = self._drop_many(pending, None)
            pending = [job_id for job_id, ok in zip(pending, done, strict=True) if not ok]

    def _drop_many(self, job_ids: list[str], cutoff: float | None) -> list[bool]:
        """Drop each record (finished by ``cutoff`` when given) in two round trips; which were dropped."""
        read = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            read.hmget(self.keys.job(job_id), *_DROP_FIELDS)
        drop = self.client.pipeline(transaction=False)
        for job_id, values in zip(job_ids, read.execute(), strict=True):
            keys = [
                self.keys.job(job_id),
                self.keys.events(job_id),
                self.keys.log(job_id),
                self.keys.log_added(job_id),
                self.keys.message(job_id),
                self.keys.canvas(job_id),
                self.keys.leases(),
            ]
            state = raw_state = ""
            idempotency = self.keys.idempotency(json.loads(values[4])) if values[4] else ""
            if values[0] is not None:
                state, job_type, queue = (json.loads(v) for v in values[:3])
                tags = json.loads(values[3]) if values[3] else {}  # left out when empty
                raw_state = values[0].decode()
                keys += [
                    self.keys.index_state(state),
                    self.keys.stats(),
                    self.keys.finished(state),
                    *self._indexes(job_type, queue, tags),
                    self.keys.index_type(job_type),  # a record of schema version 1 or 2
                    self.keys.index_queue(queue),
                ]
            else:
                keys += ["", "", *(self.keys.finished(s.value) for s in FINISHED_STATES)]
            args = [job_id, raw_state, state, "" if cutoff is None else repr(cutoff), idempotency]
            self._drop(keys=keys, args=args, client=drop)
        return [bool(n) for n in drop.execute()]

    def expire(self, retention: Callable[[str], float], now: float, batch: int) -> int:
        """Drop standalone records finished longer ago than their state's retention (0 = keep).

        Reads ``batch`` ids per finished state, oldest created first, so one call costs O(batch)
        whatever the registry holds; a page of jobs created before the cutoff that all finished
        after it (each refused by the drop script) is passed over for the next. Returns how many
        records were dropped.
        """
        dropped = 0
        for state in sorted(s.value for s in FINISHED_STATES):
            keep_s = retention(state)
            if keep_s <= 0:
                continue
            cutoff, start, done = now - keep_s, 0, 0
            while not done:
                ids = self.client.zrangebyscore(
                    self.keys.finished(state), "-inf", cutoff, start=start, num=batch
                )
                done = sum(self._drop_many([i.decode() for i in ids], cutoff)) if ids else 0
                dropped += done
                if len(ids) < batch:
                    break
                start += batch
        return dropped

    # -- transitions -------------------------------------------------------------------

    def transition(
        self,
        job_id: str,
        to: JobState,
        *,
        allowed: Iterable[JobState],
        fence: int | None = None,
        fields: dict[str, Any] | None = None,
        event: JobEvent | None = None,
        lease_until: float | None = None,
        pipe: Any = None,
        effects: Effects | None = None,
        expired_by: float | None = None,
    ) -> JobState | None:
        """Move ``job_id`` to ``to`` if it is in ``allowed`` (and on ``fence``, and with its lease
        expired by ``expired_by`` when given: a reaper's recovery).

        Sets ``fields`` and ``updated_at``, records ``event`` (or none for a silent update),
        and sets the lease expiry (``0`` drops the lease); ``effects`` apply with the change only.
        Returns the previous state, or None when the change was refused. With ``pipe`` the change
        is only queued on that pipeline (batch writers execute it) and None is returned.
        """
        call = self._transition_call(
            job_id, to, allowed, fence, fields, event, lease_until, False, effects, expired_by
        )
        reply = self._run(call, pipe)
        previous = reply[0] if reply and effects is not None and pipe is None else reply
        return JobState(previous.decode()) if previous and pipe is None else None

    def update_running(
        self,
        job_id: str,
        fence: int,
        *,
        fields: dict[str, Any] | None = None,
        lease_until: float | None = None,
    ) -> bool:
        """Set ``fields`` and the lease of ``job_id``'s running attempt ``fence``, silently (no event);
        False, and nothing written, once the job is no longer that attempt (cancelled, recovered, ended)."""
        held = self.transition(
            job_id,
            JobState.RUNNING,
            allowed={JobState.RUNNING},
            fence=fence,
            fields=fields,
            lease_until=lease_until,
        )
        return held is not None

    def finish(
        self,
        job_id: str,
        to: JobState,
        *,
        allowed: Iterable[JobState],
        fence: int | None,
        fields: dict[str, Any],
        event: JobEvent,
        effects: Effects,
        expired_by: float | None = None,
    ) -> tuple[JobState, list[Any]] | None:
        """Move ``job_id`` to the finished state ``to`` as ``transition`` does (with ``expired_by``,
        only if its lease ran out by then), drop its lease and apply ``effects``, all in one script
        call; the previous state and the effects' replies, or None (nothing written) when refused."""
        call = self._transition_call(job_id, to, allowed, fence, fields, event, 0, False, effects, expired_by)
        reply = self._run(call)
        if not reply:
            return None
        return JobState(reply[0].decode()), reply[1]

    def claim(self, job_id: str, fence: int, worker: str, lease_until: float) -> JobRecord | None:
        """Start a waiting job's delivery ``fence`` on ``worker``; the running record, or None.

        One round trip: the script records the start with the job's attempt and returns the record.
        """
        return self.claiming(job_id, fence, worker, lease_until)()

    def claiming(
        self, job_id: str, fence: int, worker: str, lease_until: float
    ) -> Callable[[], JobRecord | None]:
        """``claim`` as a call that may be sent again while Redis does not answer: each try sends the same
        claim (its token too), so a try that landed unseen is answered with its record, not refused."""
        call = self._claim_call(job_id, fence, worker, lease_until)
        return lambda: self.claimed(self._run(call))

    def claim_on(self, pipe: Any, job_id: str, fence: int, worker: str, lease_until: float) -> None:
        """Queue ``claim``'s script call on ``pipe``, a pipeline of this registry's server and db that
        is not this registry's (a broker channel's), by its SHA alone: redis-py would ask first whether
        the script is loaded, a round trip. Its reply goes to ``claimed``; a ``NoScriptError`` one
        (the server lost its scripts) to ``load_scripts``."""
        keys, args = self._claim_call(job_id, fence, worker, lease_until)
        pipe.evalsha(self._transition.sha, len(keys), *keys, *args)

    @staticmethod
    def claimed(raw: Any) -> JobRecord | None:
        """The record a claim's reply holds, or None if the claim was refused."""
        return JobRecord.model_validate_json(raw) if raw else None

    def load_scripts(self) -> None:
        """Load the transition script on the server (``claim_on`` only sends its SHA)."""
        self.client.script_load(self._transition.script)

    def create_and_claim(
        self,
        record: JobRecord,
        worker: str,
        lease_until: float,
        message: dict[str, Any] | None = None,
        canvas: dict[str, Any] | None = None,
    ) -> Callable[[], JobRecord | None]:
        """Store a new record and claim its delivery ``record.fence`` in one transaction, as a call that
        may be sent again while Redis does not answer (``within_lease``).

        For a job first seen by a worker (sent by a client without trainq): None, and nothing
        written, if the job already has a record, so a duplicate delivery never runs it twice; the
        record this very call stored, in a try whose answer was lost, is given back by its claim (the
        same token), as ``claiming`` does.
        """
        key = self.keys.job(record.id)
        claim = self._claim_call(record.id, record.fence, worker, lease_until)

        def send() -> JobRecord | None:
            try:
                with self.client.pipeline(transaction=True) as pipe:
                    pipe.watch(key)
                    if pipe.exists(key):
                        pipe.unwatch()
                        return self.claimed(self._run(claim))
                    pipe.multi()
                    self._add_many(pipe, [record], writes=self._kept(record.id, message, canvas))
                    self._run(claim, pipe)
                    raw = pipe.execute()[-1]
            except redis.WatchError:
                return None
            except redis.RedisError as exc:
                raise BrokerUnavailable(self.url, str(exc)) from exc
            return self.claimed(raw)

        return send

    def _claim_call(
        self, job_id: str, fence: int, worker: str, lease_until: float
    ) -> tuple[list[str], list[str]]:
        """The transition script's call that starts delivery ``fence`` now on ``worker``, in the attempt on
        record, and returns the record; this call alone, sent again, is given the record again."""
        now = time.time()
        fields = {
            "started_at": now,
            "worker": worker,
            "progress": None,
            "next_attempt_at": None,
            CLAIM_FIELD: secrets.token_hex(CLAIM_TOKEN_BYTES),
        }
        event = JobEvent(state=JobState.RUNNING, at=now, attempt=ATTEMPT_FROM_RECORD, worker=worker)
        return self._transition_call(
            job_id, JobState.RUNNING, WAITING_STATES, fence, fields, event, lease_until, True
        )

    def _run(self, call: tuple[list[str], list[str]], client: Any = None) -> Any:
        """Call the transition script (``lua/transition.lua``) with ``call``'s keys and arguments,
        on ``client`` if given (a pipeline)."""
        keys, args = call
        return self._transition(keys=keys, args=args, client=client)

    def _transition_call(
        self,
        job_id: str,
        to: JobState,
        allowed: Iterable[JobState],
        fence: int | None,
        fields: dict[str, Any] | None,
        event: JobEvent | None,
        lease_until: float | None,
        returning: bool,
        effects: Effects | None = None,
        expired_by: float | None = None,
    ) -> tuple[list[str], list[str]]:
        """The transition script's keys and arguments (see ``_run``)."""
        values = dict(fields or {})
        values["updated_at"] = time.time()
        lease = "" if lease_until is None else repr(lease_until) if lease_until else "0"
        return (
            [self.keys.job(job_id), self.keys.events(job_id), self.keys.leases()],
            [
                job_id,
                "" if fence is None else json.dumps(fence),
                ",".join(s.value for s in allowed),
                to.value,
                json.dumps(encode_fields(values)),
                event.encoded() if event else "",
                self.keys.index_prefix(),
                lease,
                self.keys.stats(),
                "1" if returning else "",
                self.keys.finished_prefix(),
                "1" if to.finished else "",
                _FINISHED_ARG,
                json.dumps(effects.writes) if effects is not None else "",
                self.keys.pipeline_prefix() if returning else "",
                "" if expired_by is None else repr(expired_by),
            ],
        )

    def events(self, job_id: str, record: JobRecord | None = None) -> list[JobEvent]:
        """The transitions of ``job_id`` (whose record is ``record`` when given), oldest first.

        A job on the clean path keeps no list (see transition.lua): its events are read from the
        record. A worker of an earlier release appends to the list of a job that has none, after
        the submit its record implies.
        """
        read = self.client.pipeline()  # one snapshot: a transition writes the record and the list at once
        read.lrange(self.keys.events(job_id), 0, -1)
        read.hmget(self.keys.job(job_id), VERSION_FIELD, HISTORY_FIELD)
        if record is None:
            read.hgetall(self.keys.job(job_id))
        raw, (version, history), *found = read.execute()
        stored = [JobEvent.model_validate_json(item) for item in raw]
        if history or (stored and int(version or 0) < IMPLIED_EVENTS_VERSION):
            return stored
        if found:
            record = JobRecord.from_hash(found[0]) if found[0] else None
        if record is None:
            return stored
        implied = implied_events(record)
        return [*implied[:1], *stored] if stored else implied

    # -- listing -----------------------------------------------------------------------

    def _state_sets(self, state: JobState) -> list[str]:
        """The sorted sets whose union lists the jobs in ``state``: its index and, for a finished
        state, the retention set that holds its standalone jobs instead."""
        index = self.keys.index_state(state.value)
        return [index, self.keys.finished(state.value)] if state.finished else [index]

    def _filter_sets(self, filters: JobFilter) -> list[list[str]]:
        """Each filter given as the sorted sets whose union lists the jobs it matches.

        A queue's jobs are in one route index per job type (and, written before schema version 3,
        in the queue's own index); a type's likewise, one per queue.
        """
        state, job_type = filters.get("state"), filters.get("job_type")
        queue, tag = filters.get("queue"), filters.get("tag")
        chosen = [self._state_sets(state)] if state else []
        if job_type:
            routes = (
                self.keys.index_route(q, job_type) for q in self._paired(1, job_type, self.keys.queues())
            )
            chosen.append([self.keys.index_type(job_type), *routes])
        if queue:
            routes = (self.keys.index_route(queue, t) for t in self._paired(0, queue, self.keys.types()))
            chosen.append([self.keys.index_queue(queue), *routes])
        if tag:
            chosen.append([self.keys.index_tag(tag)])
        return chosen

    def _paired(self, part: int, name: str, legacy: str) -> list[str]:
        """The queues that had jobs of type ``name`` (``part`` 1) or the types that had jobs on queue
        ``name`` (``part`` 0), by the counters hash's fields; and every name in the legacy set
        ``legacy``, which does not say with what they were paired."""
        pipe = self.client.pipeline(transaction=False)
        fields, names = pipe.hkeys(self.keys.stats()).smembers(legacy).execute()
        found = {n.decode() for n in names}
        for route in map(json.loads, fields):
            if route[part] == name:
                found.add(route[1 - part])
        return sorted(found)

    def _union(self, sets: list[str], limit: int, offset: int) -> list[str]:
        """Ids in any of ``sets`` newest first (each once), ``limit`` from ``offset``: a page reads
        ``offset + limit`` entries of each set (of one set, only the page)."""
        if len(sets) == 1:
            return [i.decode() for i in self.client.zrevrange(sets[0], offset, offset + limit - 1)]
        pipe = self.client.pipeline(transaction=False)
        for key in sets:
            pipe.zrevrange(key, 0, offset + limit - 1, withscores=True)
        merged = heapq.merge(*pipe.execute(), key=lambda entry: entry[1], reverse=True)
        unique = dict.fromkeys(job_id.decode() for job_id, _ in merged)
        return list(islice(unique, offset, offset + limit))

    def _filtered(
        self, chosen: list[list[str]], filters: JobFilter, limit: int, offset: int
    ) -> list[JobRecord]:
        """Records matching every filter: the smallest union walked newest first, the others
        checked on each record read."""
        sizes = self.client.pipeline(transaction=False)
        for key in (k for sets in chosen for k in sets):
            sizes.zcard(key)
        counts = iter(sizes.execute())
        smallest = min(chosen, key=lambda sets: sum(next(counts) for _ in sets))
        found: list[JobRecord] = []
        start = 0
        while len(found) < offset + limit:
            page = self._union(smallest, LIST_PAGE, start)
            if not page:
                break
            found += [r for r in self.get_many(page) if _matches(r, filters)]
            start += LIST_PAGE
        return found[offset : offset + limit]

    def pages_of_state(self, state: JobState) -> Iterator[list[str]]:
        """Ids of the jobs in ``state`` now (one snapshot, so moves meanwhile skip none), a page at a time."""
        pipe = self.client.pipeline(transaction=False)
        for key in self._state_sets(state):
            pipe.zrange(key, 0, -1)
        ids = list(dict.fromkeys(i.decode() for found in pipe.execute() for i in found))
        for start in range(0, len(ids), LIST_PAGE):
            yield ids[start : start + LIST_PAGE]

    def queued_since(self, queue: str, before: float, most: int) -> list[JobRecord]:
        """``queue``'s queued jobs that nothing has changed since ``before``, among its ``most`` newest
        queued ones (read a page at a time)."""
        found: list[JobRecord] = []
        for offset in range(0, most, LIST_PAGE):
            page = self.list(state=JobState.QUEUED, queue=queue, limit=LIST_PAGE, offset=offset)
            found += (r for r in page if r.updated_at < before)
            if len(page) < LIST_PAGE:
                break
        return found

    def counts(self) -> dict[JobState, int]:
        """How many jobs are in each state: the counters summed (O(queue and type pairs)).

        Not the state sets' sizes: a finished standalone job written before schema version 3 is in
        both its state index and its retention set.
        """
        totals: Counter[str] = Counter()
        for counters in self.queue_counts().values():
            totals.update(counters)
        return {state: totals[state.value] for state in JobState}

    def queue_counts(self) -> dict[str, dict[str, int]]:
        """Jobs per state for every queue that has had jobs (kept as counters, O(queue and type pairs))."""
        return self._counters(0, self.keys.queues(), self.keys.queue_stats)

    def type_counts(self) -> dict[str, dict[str, int]]:
        """Jobs per state for every job type that has had jobs (kept as counters, O(queue and type pairs))."""
        return self._counters(1, self.keys.types(), self.keys.type_stats)

    def _counters(
        self, part: int, legacy: str, legacy_key: Callable[[str], str]
    ) -> dict[str, dict[str, int]]:
        """The non-zero state counters of each queue (``part`` 0) or type (1): the counters hash's
        fields summed by it, plus the legacy hash of each name in the legacy set ``legacy`` (older
        writers count there; counters add)."""
        pipe = self.client.pipeline(transaction=False)
        fields, names = pipe.hgetall(self.keys.stats()).smembers(legacy).execute()
        totals: dict[str, Counter[str]] = {}
        for field, count in fields.items():
            route = json.loads(field)
            totals.setdefault(route[part], Counter())[route[2]] += int(count)
        older = sorted(n.decode() for n in names)
        for name in older:
            pipe.hgetall(legacy_key(name))
        for name, raw in zip(older, pipe.execute(), strict=True):
            counted = totals.setdefault(name, Counter())
            for state, count in raw.items():
                counted[state.decode()] += int(count)
        return {name: {k: n for k, n in totals[name].items() if n} for name in sorted(totals)}

    def memory_used(self) -> str:
        """The Redis server's memory in use, as it reports it (``INFO memory`` used_memory_human)."""
        return str(self.client.info("memory")["used_memory_human"])

    def clean(
        self, *, before: float | None = None, keep: int | None = None, running_runs: Collection[str] = ()
    ) -> int:
        """Delete finished records created before ``before`` or beyond the newest ``keep``, but none
        of a pipeline run in ``running_runs`` (its jobs go with the run once it ends and ages out)."""
        found: dict[str, float] = {}  # by id: one written before schema version 3 may be in two sets
        for index in (key for state in FINISHED_STATES for key in self._state_sets(state)):
            for raw_id, score in self.client.zrange(index, 0, -1, withscores=True):
                found[raw_id.decode()] = score
        doomed = sorted(
            ((score, job_id) for job_id, score in found.items() if not _of_runs(job_id, running_runs)),
            reverse=True,
        )
        if keep is not None:
            doomed = doomed[keep:]
        if before is not None:
            doomed = [(s, i) for s, i in doomed if s < before]
        for _, job_id in doomed:
            self.delete(job_id)
        return len(doomed)

    # -- logs and leases ---------------------------------------------------------------

    def append_log(self, job_id: str, lines: Iterable[str]) -> None:
        """Append log lines to the job's log stream (capped at the newest lines), and count them."""
        lines = list(lines)
        if not lines:
            return
        pipe = self.client.pipeline(transaction=False)
        for line in lines:
            pipe.xadd(self.keys.log(job_id), {"line": line}, maxlen=self.log_max_lines, approximate=True)
        pipe.incrby(self.keys.log_added(job_id), len(lines))
        pipe.execute()

    def read_log(
        self, job_id: str, after: str = "0-0", block_ms: int | None = None, count: int = 1000
    ) -> list[tuple[str, str]]:
        """Log entries after stream id ``after`` as ``(entry_id, line)``; may block for new ones."""
        reply = self.client.xread({self.keys.log(job_id): after}, count=count, block=block_ms)
        if not reply:
            return []
        _, entries = reply[0]
        return [(eid.decode(), fields[b"line"].decode()) for eid, fields in entries]

    def log_dropped(self, job_id: str) -> int:
        """How many of the job's log lines the cap (``log_max_lines``) has trimmed away."""
        read = self.client.pipeline(transaction=False)
        read.xinfo_stream(self.keys.log(job_id))
        read.get(self.keys.log_added(job_id))
        info, added = read.execute(raise_on_error=False)
        if isinstance(info, redis.ResponseError):  # no log yet
            return 0
        return trimmed_lines(info, None if added is None else int(added))

    def log_tail(self, job_id: str, count: int) -> list[tuple[str, str]]:
        """The last ``count`` log entries as ``(entry_id, line)``, oldest first."""
        entries = self.client.xrevrange(self.keys.log(job_id), count=count)
        return [(eid.decode(), fields[b"line"].decode()) for eid, fields in reversed(entries)]

    def expired_leases(self, now: float, limit: int = 100) -> list[str]:
        """Ids of jobs whose lease (or retry deadline) passed before ``now``."""
        ids = self.client.zrangebyscore(self.keys.leases(), "-inf", now, start=0, num=limit)
        return [i.decode() for i in ids]

    def drop_lease(self, job_id: str) -> None:
        """Forget a lease entry that no longer belongs to a running or retrying job."""
        self.client.zrem(self.keys.leases(), job_id)

    # -- queues ------------------------------------------------------------------------

    def register_worker(self, hostname: str, queues: Iterable[str], keep: bool = False) -> bool:
        """Remember which queues a worker was started for (``resume`` gives them back); with ``keep``,
        only if nothing is remembered for it. True if written."""
        write = self.client.hsetnx if keep else self.client.hset
        return bool(write(self.keys.workers(), hostname, json.dumps(sorted(queues))))

    def worker_queues(self) -> dict[str, list[str]]:
        """Worker hostname -> the queues it was started for."""
        raw = self.client.hgetall(self.keys.workers())
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def paused_queues(self) -> set[str]:
        """Names of queues paused with ``trainq pause``."""
        return {q.decode() for q in self.client.smembers(self.keys.paused())}

    def queue_holds(self, queues: Iterable[str], live: Collection[str]) -> dict[str, str]:
        """Why jobs of each of ``queues`` stay queued, if something holds them all: ``queue gpu is paused``
        (a worker started for it skips it too), or ``queue gpu has no live worker`` when it is not one of
        ``live`` (the queues live workers consume, ``SharingStore.live_queues``: read from Redis, no
        broadcast to the workers, so ``show`` stays fast)."""
        names, paused = set(queues), self.paused_queues()
        holds = {q: f"queue {q} has no live worker (start one: trainq worker {q})" for q in names - set(live)}
        holds.update({q: f"queue {q} is paused (trainq resume {q})" for q in names & paused})
        return holds

    def set_paused(self, queue: str, paused: bool) -> None:
        """Record ``queue`` as paused (or not) so workers started later honour it."""
        if paused:
            self.client.sadd(self.keys.paused(), queue)
        else:
            self.client.srem(self.keys.paused(), queue)

    def list(self, *, limit: int = 50, offset: int = 0, **filters: Unpack[JobFilter]) -> list[JobRecord]:
        """Records newest first matching every filter given, ``limit`` from ``offset``.

        Without filters, the union of every state's sets: each job is in exactly one, so no index
        of all jobs is kept (a sorted-set entry less per job).
        """
        chosen = self._filter_sets(filters)
        if not chosen:
            every = [key for state in JobState for key in self._state_sets(state)]
            return self.get_many(self._union(every, limit, offset))
        if len(chosen) == 1:
            return self.get_many(self._union(chosen[0], limit, offset))
        return self._filtered(chosen, filters, limit, offset)


def _matches(record: JobRecord, filters: JobFilter) -> bool:
    """True when ``record`` matches every filter given."""
    state, job_type = filters.get("state"), filters.get("job_type")
    queue, tag = filters.get("queue"), filters.get("tag")
    name, _, value = (tag or "").partition("=")
    return (
        (not state or record.state is state)
        and (not job_type or record.type == job_type)
        and (not queue or record.queue == queue)
        and (not tag or record.tags.get(name) == value)
    )


def unreachable(error: BaseException) -> BrokerUnavailable:
    """The error for a Redis failure (the registry's) or a kombu one (the broker's), as ``ping`` gives it."""
    if isinstance(error, redis.RedisError):
        return BrokerUnavailable(get_registry().url, sentinel.reason(error), "registry")
    return BrokerUnavailable(get_settings().broker_url or "the embedded Redis", str(error))


def _of_runs(job_id: str, run_ids: Collection[str]) -> bool:
    """True if ``job_id`` names a job of one of ``run_ids`` (``<run id>.<job_id>``)."""
    return any(job_id[:at] in run_ids for at, char in enumerate(job_id) if char == ".")


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process's registry, from the process's settings."""
    return Registry.from_settings(get_settings())
