"""``trainq migrate`` on the dump of release 95980f0: records and runs end in this release's layout,
read the same as before, an interrupted migration resumes, a second one changes nothing, and the
CLI and a worker then treat the migrated data as they treat the release's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from tests.fixtures import Workers, run_cli
from tests.upgrade import test_release_dump
from tests.upgrade.dump import export_db, load_dump
from trainq.job.record import HISTORY_FIELD, SCHEMA_VERSION, VERSION_FIELD, JobRecord, implied_events
from trainq.pipelines.runs import RunStatus, get_runs
from trainq.store.migration import Migration
from trainq.store.registry import get_registry

DUMP = test_release_dump.DUMP


@pytest.fixture
def expected(redis_client: redis.Redis) -> dict[str, Any]:
    """The release's dump loaded into the flushed test database; its expectations."""
    return dict(load_dump(redis_client, Path(DUMP))["expectations"])


def _job_ids(expected: dict[str, Any]) -> list[str]:
    return [job_id for ids in expected["jobs_by_state"].values() for job_id in ids]


def _as_stored_now(record: JobRecord) -> JobRecord:
    """``record`` as the current encoding stores it (times to the millisecond)."""
    return JobRecord.from_hash({k.encode(): v.encode() for k, v in record.to_hash().items()})


def _steps(status: RunStatus) -> list[tuple[Any, ...]]:
    """What ``pipeline status`` says of each job, durations aside (times are kept to the millisecond)."""
    return [
        status.state,
        *((j.job_id, j.state, j.job, j.attempts, j.error, j.blocked_by) for j in status.jobs),
    ]


def _image(client: redis.Redis) -> list[dict[str, Any]]:
    """Every key of the database that does not expire by itself, with its value."""
    return [entry for entry in export_db(client) if entry["ttl_ms"] < 0]


def _migrate(*args: str) -> str:
    result = run_cli("migrate", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_migrate_rewrites_the_release_records_once(
    expected: dict[str, Any], redis_client: redis.Redis
) -> None:
    # given the release's dump, read by this release as it is
    registry, runs = get_registry(), get_runs()
    job_ids = [*_job_ids(expected), *(f"{r}.first" for r in [expected["runs"]["running"]])]
    before = {r.id: r for r in registry.get_many(job_ids)}
    events = {job_id: registry.events(job_id) for job_id in before}
    statuses = {run_id: _steps(runs.status(run_id)) for run_id in expected["runs"].values()}
    assert not any(redis_client.hexists(registry.keys.job(j), VERSION_FIELD) for j in before)
    # when a dry run counts, then a migration is interrupted after its first batch
    counted = _migrate("--dry-run", "--batch", "3")
    assert "job records to migrate:" in counted and "nothing written" in counted
    assert not any(redis_client.hexists(registry.keys.job(j), VERSION_FIELD) for j in before)
    assert Migration(registry, batch=3).run(max_batches=1) is False
    assert redis_client.exists(registry.keys.migration())
    # and is run again to the end
    done = _migrate("--batch", "3")
    # then every record and run carries this release's version, reads the same, and its history too
    assert "job records migrated:" in done and "pipeline runs migrated: 2" in done, done
    assert not redis_client.exists(registry.keys.migration(), registry.keys.index_all())
    version = str(SCHEMA_VERSION).encode()
    for key in redis_client.scan_iter(match=registry.keys.job("*"), _type="hash"):
        assert redis_client.hget(key, VERSION_FIELD) == version, key
    for run_id in expected["runs"].values():
        assert redis_client.hget(registry.keys.pipeline(run_id), VERSION_FIELD) == version
        assert _steps(runs.status(run_id)) == statuses[run_id]
    for job_id, record in before.items():
        assert registry.get(job_id) == _as_stored_now(record), job_id
        stored = redis_client.lrange(registry.keys.events(job_id), 0, -1)
        assert all(b"null" not in e for e in stored), stored
        rounded = [e.model_copy(update={"at": round(e.at, 3)}) for e in events[job_id]]
        assert registry.events(job_id) == rounded
    # and the jobs on the clean path keep no events list (read from their record), the others
    # theirs, marked as holding the whole history
    folded = [job_id for job_id in before if not redis_client.exists(registry.keys.events(job_id))]
    assert folded and all(registry.events(j) == implied_events(registry.get(j)) for j in folded), folded
    kept = set(before) - set(folded)
    assert kept and all(redis_client.hget(registry.keys.job(j), HISTORY_FIELD) == b"1" for j in kept)
    # and the idempotency key a record carries beside its fields is kept
    idempotent = expected["job_ids"]["idempotent"]
    assert redis_client.hget(registry.keys.job(idempotent), "idempotency_key") is not None
    # when it runs a second time, it changes nothing
    image = _image(redis_client)
    again = _migrate()
    assert "job records migrated" not in again and "pipeline runs migrated" not in again, again
    assert _image(redis_client) == image


def test_the_cli_reads_migrated_records(expected: dict[str, Any]) -> None:
    # given the release's dump migrated, the CLI lists, shows and reads it as before
    _migrate()
    test_release_dump.test_the_cli_reads_what_the_release_wrote(expected)


def test_migrated_records_list_by_every_filter(expected: dict[str, Any], redis_client: redis.Redis) -> None:
    # given the release's dump migrated: no type or queue index is left, and no finished
    # standalone job in its state index (its retention set lists it)
    _migrate()
    registry = get_registry()
    assert not list(redis_client.scan_iter(match="trainq:index:type:*"))
    assert not list(redis_client.scan_iter(match="trainq:index:queue:*"))
    for record in registry.get_many(_job_ids(expected)):
        in_index = redis_client.zscore(registry.keys.index_state(record.state.value), record.id)
        assert (in_index is None) == (record.state.finished and record.pipeline_id is None), record.id
    # then every filter lists each record once, as before
    test_release_dump.test_every_filter_lists_the_release_records(expected)


def test_a_worker_finishes_migrated_jobs(expected: dict[str, Any], workers: Workers) -> None:
    # given the release's dump migrated, a worker finishes its waiting jobs and its running pipeline
    _migrate()
    test_release_dump.test_a_worker_finishes_what_the_release_left(expected, workers)
