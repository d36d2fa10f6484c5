"""The sharing store's decisions (real Redis, no workers): turns between keys by weight, a rate's
next token, a parked job leaving the line when cancelled, keyless jobs never touching it, the
sweep giving back the slots of vanished jobs, a fair queue's window, and an idle admission's cost."""

from __future__ import annotations

from typing import Any

from tests.integration.test_send import NOT_SENDS, monitored
from trainq import JobState, get_registry
from trainq.ops.control import cancel, submit
from trainq.sharing.plugin import Sharing
from trainq.store.sharing import SharingStore, get_sharing


def park(store: SharingStore, key: str, count: int, policy: dict[str, Any]) -> None:
    """Send ``count`` jobs of ``key`` to the gate: the first takes the one slot, the rest are parked."""
    for n in range(count):
        store.park_or_pass(key, f"{key}{n}", policy)


def test_waiting_keys_take_turns_by_weight(registry: Any) -> None:
    # given keys A (weight 2) and B (weight 1), each with one slot taken and five jobs parked
    store = SharingStore(registry.client, registry.keys)
    park(store, "A", 6, {"max_running": 1, "weight": 2})
    park(store, "B", 6, {"max_running": 1})
    assert [u.waiting for u in store.uses(["A", "B"])] == [5, 5]
    # when both limits are raised and six jobs may start
    store.set_policy("A", {"max_running": 100, "weight": 2})
    store.set_policy("B", {"max_running": 100})
    started, _ = store.admit(["A", "B"], 6)
    # then A started two for each one of B's, in turns, oldest first within a key
    assert [key for key, _ in started] == ["A", "A", "B", "A", "A", "B"]
    assert store.holders("B") == (["B0", "B1", "B2"], ["B3", "B4", "B5"])


def test_a_key_out_of_tokens_says_when_the_next_is_due(registry: Any) -> None:
    # given a key limited to 2 starts a second whose token the first job took
    store = SharingStore(registry.client, registry.keys)
    first = store.park_or_pass("api", "j0", {"rate": "2/s"})
    second = store.park_or_pass("api", "j1", {"rate": "2/s"})
    assert first.passed and not second.passed
    # when admission runs at once
    started, wait = store.admit([], 10)
    # then nothing starts, and the next token is due within half a second
    assert started == []
    assert wait is not None and 0 < wait <= 0.5


def test_a_cancelled_parked_job_leaves_the_line_and_keyless_jobs_touch_nothing(redis_client: Any) -> None:
    # given a key with one slot taken and one job parked (no worker runs them)
    limit = {"key": "team", "max_running": 1}
    held, parked = submit("probe", {}, limit=limit), submit("probe", {}, limit=limit)
    assert get_sharing().holders("team") == ([held], [parked])
    assert get_registry().events(parked)[-1].reason == "waiting for a slot of team (1/1 running)"
    # when the parked job is cancelled, then it leaves the line and never holds a slot
    assert cancel(parked) is JobState.QUEUED
    assert get_sharing().holders("team") == ([held], [])
    # and when the holder is cancelled, its slot comes back
    cancel(held)
    assert get_sharing().holders("team") == ([], [])
    # and a job without a key writes no sharing key at all
    before = set(redis_client.keys("*limit*"))
    submit("probe", {})
    assert set(redis_client.keys("*limit*")) == before


def test_an_idle_admission_reads_the_waiting_keys_and_nothing_else(registry: Any, redis_client: Any) -> None:
    # given no key waiting, and a store that has admitted before (its script loaded)
    store = SharingStore(registry.client, registry.keys)
    store.admit([], 10)
    # when admission runs, as every worker's ticker does every 0.1 s
    with monitored(redis_client) as commands:
        started, wait = store.admit([], 10)
    # then it starts nothing in one call that reads one key, not even the clock
    assert (started, wait) == ([], None)
    calls = [c[1].upper() if c[0] == "lua" else c[0] for c in commands if c[0] not in NOT_SENDS]
    assert calls == ["EVALSHA", "ZRANGE"]


def test_a_sweep_gives_back_the_slots_of_jobs_whose_records_are_gone(registry: Any) -> None:
    # given a key whose slot and parked place are held by ids with no record (e.g. a send that failed)
    store = SharingStore(registry.client, registry.keys)
    park(store, "ghosts", 2, {"max_running": 1})
    kept = submit("probe", {}, limit={"key": "ghosts", "max_running": 1})
    # when a worker's reaper sweeps
    dropped = Sharing().sweep(registry)
    # then both are forgotten, and the real job, parked behind them, got the slot
    assert dropped == 2
    assert store.holders("ghosts") == ([kept], [])


def test_a_fair_queues_window_takes_turns_between_keys_and_counts_live_capacity(registry: Any) -> None:
    # given a fair queue whose only worker has 2 live processes, and one that expired
    store = SharingStore(registry.client, registry.keys)
    store.add_capacity("w1", ["q"], 2, ttl_s=30)
    store.add_capacity("gone", ["q"], 5, ttl_s=-1)
    assert [(u.window, u.capacity) for u in store.fair_uses()] == []  # not fair until made so
    store.set_fair("q", None)
    # when 4 fair jobs of key A (no limit) arrive, then 2 of B
    arrivals = [store.park_or_pass("A", f"A{n}", None, "q") for n in range(4)]
    arrivals += [store.park_or_pass("B", f"B{n}", None, "q") for n in range(2)]
    # then the window (the live capacity, 2) let the first two of A through, and the rest wait for it
    assert [a.passed for a in arrivals] == [True, True, False, False, False, False]
    assert arrivals[-1].full == "q"
    assert store.admit([], 10)[0] == []
    # and as places free, the keys take turns: B's jobs do not wait behind A's backlog
    order = []
    for done in ["A0", "A1", "B0", "A2"]:
        store.drop(done[0], [done])  # it ended
        order += [key for key, _ in store.admit([done[0]], 10)[0]]
    assert order == ["A", "B", "A", "B"]
    assert [(u.queue, u.window, u.capacity, u.inflight) for u in store.fair_uses()] == [("q", None, 2, 2)]
