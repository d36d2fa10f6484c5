"""``trainq migrate``: rewrite what an earlier release stored in this release's layout.

Records of release 95980f0 (no ``v`` field) are read as they are, so migrating is never needed
for correctness: it reclaims memory (nulls and defaults left out, compact events, none kept for a
job on the clean path, one route index entry instead of a type and a queue one, a finished job in
its retention set only) and marks each record and run with the schema version. It walks the keys with SCAN
cursors a batch at a time and saves the cursors after each batch, so an interrupted migration
resumes where it stopped; each record is rewritten under WATCH (a worker's change meanwhile makes
it read again), and a record already current is left alone, so running it twice changes nothing
the second time.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import redis

from trainq.job.record import (
    HISTORY_FIELD,
    SCHEMA_VERSION,
    VERSION_FIELD,
    JobEvent,
    JobRecord,
    implied_events,
)
from trainq.store.keys import Keys
from trainq.store.registry import Registry

#: Keys scanned per batch (SCAN's COUNT) and records rewritten per saved cursor.
DEFAULT_BATCH = 200
#: Progress fields: where each walk stopped (absent: not started, or finished).
_JOBS, _RUNS = "jobs_cursor", "runs_cursor"


class Migration:
    """One pass over the registry's job records and pipeline runs; ``counts`` says what it did."""

    def __init__(self, registry: Registry, *, dry_run: bool = False, batch: int = DEFAULT_BATCH) -> None:
        self.registry = registry
        self.client = registry.client
        self.keys = registry.keys
        self.dry_run = dry_run
        self.batch = batch
        self.counts: Counter[str] = Counter()

    def run(self, max_batches: int | None = None) -> bool:
        """Migrate, from the saved cursors; stop after ``max_batches`` (None: all). True when done."""
        if not self.dry_run and self.client.unlink(self.keys.index_all()):
            self.counts["index of all jobs removed"] += 1
        batches = 0
        for field, step in ((_JOBS, self._jobs), (_RUNS, self._runs)):
            cursor = int(self._saved(field) or 0)
            while max_batches is None or batches < max_batches:
                cursor = step(cursor)
                batches += 1
                if cursor == 0:
                    self._save(field, None)
                    break
                self._save(field, cursor)
            else:
                return False
        return True

    def _saved(self, field: str) -> bytes | None:
        return None if self.dry_run else self.client.hget(self.keys.migration(), field)

    def _save(self, field: str, cursor: int | None) -> None:
        if self.dry_run:
            return
        if cursor is None:
            self.client.hdel(self.keys.migration(), field)
        else:
            self.client.hset(self.keys.migration(), field, cursor)

    def _jobs(self, cursor: int) -> int:
        """Rewrite one batch of job records; the next cursor."""
        cursor, found = self.client.scan(
            cursor, match=f"{self.keys.job('*')}", count=self.batch, _type="hash"
        )
        for key in found:
            self.counts[self._job(key.decode())] += 1
        return int(cursor)

    def _job(self, key: str) -> str:
        """Rewrite one record (and its events) in the current layout; what was done."""
        job_id = key.removeprefix(self.keys.job(""))
        events_key = self.keys.events(job_id)
        while True:
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key, events_key)
                    raw = pipe.hgetall(key)
                    if not raw:
                        return "job records gone meanwhile"
                    if raw.get(VERSION_FIELD.encode()) == str(SCHEMA_VERSION).encode():
                        return "job records already current"
                    if self.dry_run:
                        return "job records to migrate"
                    events = pipe.lrange(events_key, 0, -1)
                    pipe.multi()
                    record = _rewrite_record(pipe, key, raw)
                    _reindex(pipe, self.keys, record)
                    if events:
                        pipe.delete(events_key)
                        encoded = [JobEvent.model_validate_json(e).encoded() for e in events]
                        kept = [JobEvent.model_validate_json(e) for e in encoded]
                        if kept != implied_events(record):  # those the record implies are read from it
                            pipe.rpush(events_key, *encoded)
                            pipe.hset(key, HISTORY_FIELD, "1")
                    pipe.execute()
                    return "job records migrated"
                except redis.WatchError:
                    continue  # a worker moved the job meanwhile: read it again

    def _runs(self, cursor: int) -> int:
        """Mark one batch of pipeline runs with the schema version; the next cursor."""
        cursor, found = self.client.zscan(self.keys.pipelines(), cursor, count=self.batch)
        for raw_id, _ in found:
            run = self.keys.pipeline(raw_id.decode())
            current = self.client.hget(run, VERSION_FIELD) == str(SCHEMA_VERSION).encode()
            if current or not self.client.exists(run):
                self.counts["pipeline runs already current"] += 1
            elif self.dry_run:
                self.counts["pipeline runs to migrate"] += 1
            else:
                self.client.hset(run, VERSION_FIELD, SCHEMA_VERSION)  # the layout is unchanged
                self.counts["pipeline runs migrated"] += 1
        return int(cursor)


def _reindex(pipe: Any, keys: Keys, record: JobRecord) -> None:
    """Queue the index moves of schema version 3: one route index instead of the type's and the
    queue's, and a finished standalone job in its retention set (scored by creation) instead of its
    state index."""
    pipe.zrem(keys.index_type(record.type), record.id)
    pipe.zrem(keys.index_queue(record.queue), record.id)
    pipe.zadd(keys.index_route(record.queue, record.type), {record.id: record.created_at})
    if record.state.finished and record.pipeline_id is None:
        pipe.zrem(keys.index_state(record.state.value), record.id)
        pipe.zadd(keys.finished(record.state.value), {record.id: record.created_at})


def _rewrite_record(pipe: Any, key: str, raw: dict[bytes, bytes]) -> JobRecord:
    """Queue the writes that turn the stored ``raw`` record into its current encoding; the record
    as it will read back.

    Fields that are not part of the record (the idempotency key) stay as they are.
    """
    fields = {k.decode(): v for k, v in raw.items()}
    record = JobRecord.model_validate(
        {k: json.loads(v) for k, v in fields.items() if k in JobRecord.model_fields}
    )
    encoded = record.to_hash()
    dropped = [k for k in fields if k in JobRecord.model_fields and k not in encoded]
    if dropped:
        pipe.hdel(key, *dropped)
    pipe.hset(key, mapping=encoded)
    return JobRecord.from_hash({k.encode(): v.encode() for k, v in encoded.items()})
