"""The embedded default as a user meets it from the CLI in another directory: a one-off command
starts the embedded Redis and leaves it running on purpose (a worker started later takes the jobs
queued in it), says so once with where it runs, and ``trainq down`` stops it.
"""

from __future__ import annotations

from pathlib import Path

import redis

from tests.e2e.test_up import home, trainq  # noqa: F401  (home is a fixture)
from trainq.ops import embedded

NOTE = "note: started the embedded Redis in {}; it keeps running for workers and later commands"


def test_a_one_off_command_leaves_the_embedded_redis_running_says_so_and_down_stops_it(
    home: Path,  # noqa: F811
) -> None:
    note = NOTE.format(home / "redis")
    try:
        # given no broker configured and nothing running, when a job is submitted from another directory
        submitted = trainq(home, "submit", "data", "--config", '{"dataset": "iris"}', cwd=home)
        # then the job id alone is on stdout, and stderr says once where the embedded Redis runs and
        # how to stop it
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip()
        assert submitted.stderr.count(note) == 1 and "trainq down" in submitted.stderr, submitted.stderr
        # and it keeps running: a later command sees the job, and says nothing more about it
        listed = trainq(home, "list", cwd=home)
        assert listed.returncode == 0 and job_id in listed.stdout, listed.stdout + listed.stderr
        assert "embedded Redis" not in listed.stderr
        assert embedded.is_running(home)
        # when something else still uses it, `trainq down` refuses, naming why (exit 1)
        other = redis.Redis(unix_socket_path=str(embedded.socket_path(home)))
        other.ping()
        refused = trainq(home, "down", cwd=home)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
        assert "still serves 1 other connection(s)" in refused.stderr and "--force" in refused.stderr
        assert embedded.is_running(home)
        other.close()
        # when nothing else does, `trainq down` stops it
        down = trainq(home, "down", cwd=home)
        assert down.returncode == 0, down.stderr
        assert f"stopped the embedded Redis in {home / 'redis'}" in down.stdout
        assert not embedded.is_running(home)
        # and the queued job is still there for the next command (which starts it again, and says so)
        again = trainq(home, "list", "--json", cwd=home)
        assert again.returncode == 0 and job_id in again.stdout and note in again.stderr, again.stderr
        # and a second `trainq down` after the last one finds nothing to stop
        assert trainq(home, "down", cwd=home).returncode == 0
        not_running = trainq(home, "down", cwd=home)
        assert not_running.returncode == 0 and "is not running" in not_running.stdout
    finally:
        embedded.stop(home)
