"""A rolling deploy: a worker of the release before #13 and a current worker share one queue and
one Redis database while both versions submit; every job runs to ``succeeded`` exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.fixtures import Workers, wait_for
from tests.jobs import attempts_key
from tests.upgrade.old_release import old_code, start_old_worker, submit_old
from trainq.job.record import JobState
from trainq.ops.control import submit
from trainq.store.registry import get_registry

JOBS_EACH = 20


@pytest.fixture(scope="module")
def old_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The old release's code, extracted once for the module."""
    return old_code(tmp_path_factory.mktemp("release"))


def test_old_and_new_workers_side_by_side_lose_no_job(
    old_release: Path, workers: Workers, redis_client: redis.Redis
) -> None:
    # given the old release's code (not the checkout's), and a worker of it and a current worker
    # on the probe queue of one Redis database
    (module,) = submit_old(old_release, ["__import__('trainq').__file__"])
    assert module.startswith(str(old_release)), module
    old = start_old_worker(workers, old_release, "probe", name="old")
    workers.start("probe", name="new")
    # when the old code submits half the jobs and the current code the other half
    calls = [
        f"submit('probe', {{'seconds': 0.1}}, tags={{'from': 'old', 'n': '{n}'}})" for n in range(JOBS_EACH)
    ]
    ids = submit_old(old_release, calls)
    ids += [submit("probe", {"seconds": 0.1}, tags={"from": "new", "n": str(n)}) for n in range(JOBS_EACH)]
    assert len(set(ids)) == 2 * JOBS_EACH
    registry = get_registry()

    def finished() -> list[str]:
        return [r.id for r in registry.get_many(ids) if r.state.finished]

    # and the old worker is stopped (warm) half way, as a rolling deploy does
    wait_for(lambda: len(finished()) >= JOBS_EACH // 2, 60, message="half the jobs done")
    old.stop()
    wait_for(lambda: len(finished()) == len(ids), 60, message="every job finished")
    # then every job succeeded, each started and ended exactly once (its own attempt notes)
    records = registry.get_many(ids)
    assert {r.state for r in records} == {JobState.SUCCEEDED}, [(r.id, r.state) for r in records]
    for job_id in ids:
        notes = [n.decode().split(":")[0] for n in redis_client.lrange(attempts_key(job_id), 0, -1)]
        assert notes == ["start", "end"], (job_id, notes)
        states = [e.state for e in registry.events(job_id)]
        assert states == [JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED], (job_id, states)
    # and both versions ran jobs
    assert {(r.worker or "").split("@")[0] for r in records} == {"old", "new"}
    # and the current release lists each job once by its queue, type and state (an old worker's
    # finish also enters the state index), and counts each once
    for filters in ({"queue": "probe"}, {"job_type": "probe"}, {"state": JobState.SUCCEEDED}):
        listed = [r.id for r in registry.list(limit=1000, **filters)]
        assert set(ids) <= set(listed) and len(listed) == len(set(listed)), filters
    assert registry.counts()[JobState.SUCCEEDED] == len(registry.list(state=JobState.SUCCEEDED, limit=1000))
