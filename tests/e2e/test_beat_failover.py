"""Beat failover: when the Beat holding the lock dies, the waiting one takes over without duplicates."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.fixtures import Beats, wait_for
from trainq import get_registry
from trainq.schedules import create

#: Beat's lock here (TRAINQ_BEAT_LOCK_S; 30 s by default, a wait this test would spend in full): five
#: of the tests' 1 s Beat ticks.
LOCK_S = 5


def submitted(name: str) -> list[float]:
    """Creation times of the jobs schedule ``name`` submitted, oldest first."""
    return sorted(r.created_at for r in get_registry().list(tag=f"schedule={name}", limit=500))


@pytest.mark.slow
def test_waiting_beat_takes_over_when_the_lock_holder_dies(beats: Beats) -> None:
    # given an every-1s schedule, a Beat holding the lock and a second one waiting on it
    create("pulse", {"every": "1s", "type": "probe"})
    env = {"TRAINQ_BEAT_LOCK_S": str(LOCK_S)}
    first = beats.start(env=env)
    second = beats.start(env=env, lock=False)
    wait_for(lambda: len(submitted("pulse")) >= 2, 20, message="first Beat submitting")
    # when the lock holder is killed outright (its lock is not released, only expires)
    first.kill()
    killed_at = time.time()
    # then the second Beat acquires the lock once it expires (LOCK_S) and carries on
    wait_for(lambda: "beat: Acquired lock" in second.output(), LOCK_S + 15, message="second Beat's lock")
    took_over_s = time.time() - killed_at
    before = len(submitted("pulse"))
    wait_for(lambda: len(submitted("pulse")) >= before + 2, 20, message="second Beat submitting")
    assert took_over_s <= LOCK_S + 2, took_over_s
    # and no due time was submitted twice, before, during or after the handover
    created = submitted("pulse")
    assert all(later - earlier > 0.5 for earlier, later in itertools.pairwise(created)), created
    assert not [t for t in created if killed_at + 0.5 < t < killed_at + took_over_s - 0.5]
