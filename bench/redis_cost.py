"""Case 10: Redis work per job on both sides of a job, read from ``INFO commandstats``.

The submit side is the change over sending N no-ops with no worker running; the worker side
is the change over one solo worker starting, draining them (and an end job it is told to
stamp) and stopping. The same run without the no-ops is subtracted from the worker side,
so start-up, shutdown and the end job are not counted. As in #13, a command run by a Lua
script or inside MULTI counts on its own line and inside the ``EVALSHA``/``EXEC`` (Redis
counts both); two figures beside them, without a target, count each command once: the
server's own CPU (``INFO cpu``, network included) and the commands' time read from ``SLOWLOG``
at threshold 0 in a separate pass (where a script's commands are logged apart from it, by
the Lua client, and ``EXEC`` is not logged at all).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis

from bench.measure import reset, stamp_key
from bench.report import Row
from bench.sizes import Sizes
from bench.systems import BenchEnv, Sender, start_workers

SYSTEMS = ("trainq", "celery")
CASE = "10 Redis cost"
#: Commands the bench itself sends while measuring (``INFO`` for the figures).
OWN_COMMANDS = frozenset({"info"})
#: ... and while reading the slowlog.
OWN_SLOWLOG_COMMANDS = frozenset({"info", "slowlog", "config"})
#: The client address ``SLOWLOG`` gives a command run by a Lua script.
LUA_CLIENT = b"?:0"
#: Enough slowlog entries for every command of a pass (about 30 per job).
SLOWLOG_LEN = 1_000_000
TOP = 5
STOP_TIMEOUT_S = 60.0

Reading = TypeVar("Reading", "Usage", float)


@dataclass(frozen=True)
class Usage:
    """Redis work: calls and microseconds by command, and the server's own CPU microseconds."""

    calls: dict[str, float]
    usec: dict[str, float]
    cpu_us: float

    def __sub__(self, other: Usage) -> Usage:
        names = self.calls.keys() | other.calls.keys()
        return Usage(
            {n: self.calls.get(n, 0) - other.calls.get(n, 0) for n in names},
            {n: self.usec.get(n, 0) - other.usec.get(n, 0) for n in names},
            self.cpu_us - other.cpu_us,
        )

    def per_job(self, n: int) -> Usage:
        """This usage divided among ``n`` jobs."""
        return Usage(
            {k: v / n for k, v in self.calls.items()},
            {k: v / n for k, v in self.usec.items()},
            self.cpu_us / n,
        )

    @property
    def total_calls(self) -> float:
        """Commands of every kind."""
        return sum(self.calls.values())

    @property
    def total_usec(self) -> float:
        """Microseconds spent in commands of every kind."""
        return sum(self.usec.values())

    def top(self, by_calls: bool) -> str:
        """The ``TOP`` commands by calls or by microseconds: ``evalsha 2.0x 250µs, ...``."""
        ranked = sorted(self.calls, key=(self.calls if by_calls else self.usec).__getitem__, reverse=True)
        return ", ".join(f"{n} {self.calls[n]:.1f}x {self.usec[n]:.0f}µs" for n in ranked[:TOP])


def usage(client: redis.Redis) -> Usage:
    """Redis's counters now, the bench's own ``INFO`` calls left out."""
    stats = client.info("commandstats")
    cpu = client.info("cpu")
    names = {key: key.removeprefix("cmdstat_") for key in stats}
    kept = {key: name for key, name in names.items() if name not in OWN_COMMANDS}
    return Usage(
        {name: float(stats[key]["calls"]) for key, name in kept.items()},
        {name: float(stats[key]["usec"]) for key, name in kept.items()},
        1e6 * (float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])),
    )


class Slowlog:
    """Microseconds of top-level commands, each counted once, logged by ``SLOWLOG`` at threshold 0.

    A script's own commands (logged by the Lua client) are inside its ``EVALSHA``; ``EXEC`` is not
    logged, the commands it ran are. Calling it drains the log and returns the running total.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client, self.total = client, 0.0
        client.config_set("slowlog-log-slower-than", 0)
        client.config_set("slowlog-max-len", SLOWLOG_LEN)
        client.slowlog_reset()

    def __call__(self) -> float:
        entries = self.client.slowlog_get(SLOWLOG_LEN)
        self.client.slowlog_reset()
        for entry in entries:
            name = entry["command"].split(b" ", 1)[0].decode(errors="replace").lower()
            if entry.get("client_address") != LUA_CLIENT and name not in OWN_SLOWLOG_COMMANDS:
                self.total += entry["duration"]
        return self.total

    def close(self) -> None:
        """Back to Redis's defaults, so later passes do not pay for the log."""
        self.client.config_set("slowlog-log-slower-than", 10_000)
        self.client.config_set("slowlog-max-len", 128)
        self.client.slowlog_reset()


def _sides(
    system: str, env: BenchEnv, n: int, client: redis.Redis, read: Callable[[], Reading]
) -> tuple[Reading, Reading]:
    """``read``'s change over sending ``n`` no-ops, and over a solo worker starting, draining, stopping."""
    reset(env)
    sender, key = Sender(system, env), stamp_key()
    sender.noop()  # connecting and loading scripts happen once per process, not per job
    before = read()
    for _ in range(n):
        sender.noop()
    sent = read()
    sender.stamp(key, "end")
    (worker,) = start_workers(system, env, pool="solo")
    try:
        # one blocking call, the same in every run: polling would add commands of its own
        if client.blpop([key], timeout=120 + n / 20) is None:
            raise TimeoutError(f"{system}'s solo worker did not reach the end job: {worker.output()[-2000:]}")
    finally:
        worker.stop(STOP_TIMEOUT_S)  # a warm shutdown: the end job's bookkeeping is done when it exits
    return sent - before, read() - sent


def run(env: BenchEnv, sizes: Sizes) -> list[Row]:
    """Redis commands and CPU per job, submit side and worker side, trainq beside raw Celery."""
    n = sizes.redis_cost
    client = redis.Redis.from_url(env.redis_url, socket_timeout=None)  # redis-py's 5 s would cut BLPOP short
    submit: dict[str, Usage] = {}
    work: dict[str, Usage] = {}
    once: dict[str, float | None] = {}
    for system in SYSTEMS:
        sent, drained = _sides(system, env, n, client, lambda: usage(client))
        _, fixed = _sides(system, env, 0, client, lambda: usage(client))
        submit[system], work[system] = sent.per_job(n), (drained - fixed).per_job(n)
        slowlog = Slowlog(client)
        try:
            logged = sum(_sides(system, env, n, client, slowlog))
            logged_fixed = sum(_sides(system, env, 0, client, slowlog))
        finally:
            slowlog.close()
        once[system] = (logged - logged_fixed) / n
    reset(env)
    method = (
        f"INFO commandstats deltas over {n:,} no-ops: sent with no worker, then drained by one solo worker "
        "(a run without the no-ops subtracted); commands run by a Lua script or MULTI count inside its "
        "EVALSHA/EXEC and again on their own line"
    )
    sides = {"submit": (submit,), "worker": (work,), "submit + worker": (submit, work)}
    rows: list[Row] = []
    for what, unit, figure in (("Redis CPU", " (µs)", "total_usec"), ("Redis commands", "", "total_calls")):
        for side, parts in sides.items():
            total = len(parts) > 1
            values: dict[str, float | None] = {s: sum(getattr(p[s], figure) for p in parts) for s in SYSTEMS}
            if total:
                note = method if figure == "total_usec" else ""
            else:
                note = f"trainq's top {TOP}: {parts[0]['trainq'].top(by_calls=figure == 'total_calls')}"
            metric = f"{what} per job, {side}{unit}"
            target, issue = (2.0, 13) if total else (None, None)
            rows.append(Row(CASE, env.broker, metric, values, "celery", target, note=note, issue=issue))
    cpu: dict[str, float | None] = {s: submit[s].cpu_us + work[s].cpu_us for s in SYSTEMS}
    note = "INFO cpu (user + sys): the server's own time, network included, each command once"
    rows.append(
        Row(CASE, env.broker, "Redis process CPU per job, submit + worker (µs)", cpu, "celery", note=note)
    )
    note = (
        "SLOWLOG at threshold 0, a pass of its own: top-level commands only, a script's commands "
        "inside its EVALSHA and EXEC's inside the commands it ran"
    )
    rows.append(
        Row(CASE, env.broker, "Redis command time per job, each once (µs)", once, "celery", note=note)
    )
    return rows
