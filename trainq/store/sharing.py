"""The sharing store: each concurrency key's policy, the jobs holding its slots, the jobs parked
for it and its rate bucket, and each fair queue's window; two scripts decide who starts
(``lua/sharing_park.lua``, ``sharing_admit.lua``).

Parked jobs wait here, not in the broker: they hold no worker process and cost nothing while waiting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis

from trainq.store import lua
from trainq.store.keys import Keys
from trainq.store.registry import Effects, get_registry


@dataclass(frozen=True)
class Arrival:
    """What the gate decided for a new job: passed or parked, with its key's slots in use, their
    limit (None: no limit), its rate and its supersede policy, as they stood, and the fair queue
    whose window was full (None: none was)."""

    passed: bool
    running: int
    max_running: int | None
    rate: str | None
    supersede: str | None
    full: str | None = None


@dataclass(frozen=True)
class KeyUse:
    """One concurrency key now: its stored policy (JSON mapping), jobs holding slots and jobs parked."""

    key: str
    policy: dict[str, Any]
    running: int
    waiting: int


@dataclass(frozen=True)
class FairUse:
    """One fair queue now: its window (None: the live capacity), its live capacity and its jobs in flight."""

    queue: str
    window: int | None
    capacity: int
    inflight: int


class SharingStore:
    """Concurrency keys in Redis under one key prefix."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._park = client.register_script(lua.source("sharing_common", "sharing_park"))
        self._admit = client.register_script(lua.source("sharing_common", "sharing_admit"))

    def _names(self) -> list[str]:
        """The key names every sharing script starts its arguments with (``sharing_common.lua``)."""
        k = self.keys
        return [
            *(k.limits(), k.limits_active(), k.limits_waiting(), k.limit_prefix()),
            *(k.fair_queues(), k.fair_jobs(), k.fair_prefix()),
        ]

    def park_or_pass(
        self, key: str, job_id: str, policy: dict[str, Any] | None, fair: str | None = None
    ) -> Arrival:
        """Give ``job_id`` a slot of ``key`` now (and a place in the window of ``fair``, its queue if
        it is a fair job), or park it. ``policy`` becomes the key's policy unless it has one."""
        brought = json.dumps(policy) if policy else ""
        passed, running, most, rate, supersede, full = self._park(
            keys=[], args=[*self._names(), key, job_id, brought, fair or ""]
        )
        return Arrival(
            bool(passed),
            int(running),
            None if most < 0 else int(most),
            rate.decode() or None,
            supersede.decode() or None,
            full.decode() or None,
        )

    def repark(self, key: str, job_id: str, queue: str) -> None:
        """Give a slot (and its place in ``queue``'s window) back and park its job first in line
        again (its send failed); a sweep wakes the key."""
        pipe = self.client.pipeline(transaction=True)
        pipe.srem(self.keys.limit_running(key), job_id)
        pipe.srem(self.keys.fair_inflight(queue), job_id)
        pipe.lpush(self.keys.limit_parked(key), job_id)
        pipe.execute()

    def admit(
        self, touched: list[str], most: int
    ) -> tuple[list[tuple[str, dict[bytes, bytes]]], float | None]:
        """Start up to ``most`` parked jobs, looking again at ``touched`` keys first.

        Returns each started job's key and record (as HGETALL reads it; empty if it has none), for
        the caller to send, and the seconds until a key waiting only for its rate has a token (or None).
        """
        reply = self._admit(keys=[], args=[*self._names(), most, self.keys.job(""), *touched])
        started = [
            (reply[n].decode(), dict(zip(reply[n + 2][::2], reply[n + 2][1::2], strict=True)))
            for n in range(0, len(reply) - 1, 3)
        ]
        wait = float(reply[-1])
        return started, None if wait < 0 else wait

    def release(self, key: str, job_id: str, queue: str, effects: Effects) -> None:
        """Queue the writes that give ``job_id``'s slot and its place in ``queue``'s window back (or
        unpark it) with its finish; ``frees`` reads their replies."""
        effects.command("SREM", self.keys.limit_running(key), job_id)
        effects.command("LREM", self.keys.limit_parked(key), 0, job_id)
        effects.command("HDEL", self.keys.fair_jobs(), job_id)
        effects.command("SREM", self.keys.fair_inflight(queue), job_id)
        effects.command("LLEN", self.keys.limit_parked(key))

    @staticmethod
    def frees(replies: list[object]) -> bool:
        """True if a finish's ``release`` replies (its last) show a job may start now: the key still
        has jobs parked, or the job left a place in a fair queue's window."""
        return len(replies) >= 2 and bool(replies[-1] or replies[-2])

    def holders(self, key: str) -> tuple[list[str], list[str]]:
        """The ids of the jobs holding ``key``'s slots and of those parked for it (oldest first)."""
        return self.holders_of([key])[key]

    def holders_of(self, keys: list[str]) -> dict[str, tuple[list[str], list[str]]]:
        """``holders`` of each of ``keys``, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.smembers(self.keys.limit_running(key))
            pipe.lrange(self.keys.limit_parked(key), 0, -1)
        replies = pipe.execute()
        return {
            key: (sorted(j.decode() for j in running), [j.decode() for j in parked])
            for key, running, parked in zip(keys, replies[::2], replies[1::2], strict=True)
        }

    def drop(self, key: str, job_ids: list[str]) -> None:
        """Forget ``job_ids`` as holders or parked jobs of ``key`` and as fair jobs (they ended
        without a finish)."""
        queues = self.client.hmget(self.keys.fair_jobs(), job_ids) if job_ids else []
        pipe = self.client.pipeline(transaction=False)
        for job_id, queue in zip(job_ids, queues, strict=True):
            pipe.srem(self.keys.limit_running(key), job_id)
            pipe.lrem(self.keys.limit_parked(key), 0, job_id)
            if queue:
                pipe.srem(self.keys.fair_inflight(queue.decode()), job_id)
                pipe.hdel(self.keys.fair_jobs(), job_id)
        pipe.execute()

    def active(self) -> list[str]:
        """Keys with jobs holding a slot or parked."""
        return sorted(k.decode() for k in self.client.smembers(self.keys.limits_active()))

    def set_policy(self, key: str, policy: dict[str, Any]) -> None:
        """Store ``key``'s policy (replacing the one it had)."""
        self.client.hset(self.keys.limits(), key, json.dumps(policy))

    def delete_policy(self, key: str) -> bool:
        """Forget ``key``'s policy; False if it had none."""
        return bool(self.client.hdel(self.keys.limits(), key))

    def policy(self, key: str) -> dict[str, Any] | None:
        """``key``'s stored policy, or None."""
        raw = self.client.hget(self.keys.limits(), key)
        return json.loads(raw) if raw else None

    def uses(self, keys: list[str] | None = None) -> list[KeyUse]:
        """Each key's policy and use, in one round trip: ``keys``, or every key with a policy or jobs."""
        if keys is None:
            keys = sorted({k.decode() for k in self.client.hkeys(self.keys.limits())} | set(self.active()))
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hget(self.keys.limits(), key)
            pipe.scard(self.keys.limit_running(key))
            pipe.llen(self.keys.limit_parked(key))
        replies = pipe.execute()
        return [
            KeyUse(key, json.loads(raw) if raw else {}, running, waiting)
            for key, (raw, running, waiting) in zip(
                keys, zip(replies[::3], replies[1::3], replies[2::3], strict=True), strict=True
            )
        ]

    def set_fair(self, queue: str, window: int | None) -> None:
        """Make ``queue`` fair, its window ``window`` jobs in flight (None: its live worker capacity)."""
        self.client.hset(self.keys.fair_queues(), queue, json.dumps({"window": window} if window else {}))

    def delete_fair(self, queue: str) -> bool:
        """Make ``queue`` plain again; False if it was not fair."""
        return bool(self.client.hdel(self.keys.fair_queues(), queue))

    def fair_queues(self) -> set[str]:
        """The names of the fair queues."""
        return {q.decode() for q in self.client.hkeys(self.keys.fair_queues())}

    def add_capacity(self, worker: str, queues: list[str], processes: int, ttl_s: float) -> None:
        """Count ``worker``'s ``processes`` in the capacity of each of ``queues`` for ``ttl_s`` seconds."""
        expiry = _seconds(self.client.time()) + ttl_s
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.hset(self.keys.fair_capacity(queue), worker, f"{processes} {expiry:.3f}")
        pipe.execute()

    def fair_uses(self) -> list[FairUse]:
        """Each fair queue's window, live capacity and jobs in flight, in two round trips."""
        policies = {
            q.decode(): json.loads(v) for q, v in self.client.hgetall(self.keys.fair_queues()).items()
        }
        queues = sorted(policies)
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        for queue in queues:
            pipe.hvals(self.keys.fair_capacity(queue))
            pipe.scard(self.keys.fair_inflight(queue))
        replies = pipe.execute()
        now = _seconds(replies[0])
        return [
            FairUse(queue, policies[queue].get("window"), _live_capacity(entries, now), inflight)
            for queue, entries, inflight in zip(queues, replies[1::2], replies[2::2], strict=True)
        ]

    def live_queues(self, queues: Iterable[str]) -> set[str]:
        """Of ``queues``, those a live worker consumes: its ticker counted processes in their capacity
        within their time to live, which a worker that died (SIGKILL, host lost) stops renewing."""
        names = sorted(set(queues))
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        for queue in names:
            pipe.hvals(self.keys.fair_capacity(queue))
        clock, *capacities = pipe.execute()
        now = _seconds(clock)
        counted = zip(names, capacities, strict=True)
        return {queue for queue, entries in counted if _live_capacity(entries, now)}


def _live_capacity(entries: Iterable[bytes], now: float) -> int:
    """The processes a capacity hash's values (``"<processes> <expiry>"``) count, not expired at ``now``."""
    counts = [entry.decode().split() for entry in entries]
    return sum(int(processes) for processes, expiry in counts if float(expiry) > now)


def _seconds(clock: tuple[int, int]) -> float:
    """Redis's TIME reply as epoch seconds."""
    seconds, micros = clock
    return seconds + micros / 1e6


@lru_cache(maxsize=1)
def get_sharing() -> SharingStore:
    """The process's sharing store, on the process's registry client."""
    registry = get_registry()
    return SharingStore(registry.client, registry.keys)
