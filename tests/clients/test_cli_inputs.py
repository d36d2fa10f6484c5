"""What a user writes that trainq must refuse before anything runs, through the console script from a
directory of their own: a repeated key in a pipeline file or ``--config``, a NUL character in a
command, an id too long. Each is one line naming the problem, exit 2, and nothing is enqueued."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.clients.test_cli_console import trainq
from trainq import get_registry
from trainq.inputs.documents import brief

#: A pipeline file whose job b repeats ``depends_on`` on line 3 (b would run beside a).
REPEATED_JSON = """{"queue_id": "dupkey", "jobs": [
  {"job_id": "a", "command": "echo A"},
  {"job_id": "b", "command": "echo B", "depends_on": ["a"], "depends_on": []}]}
"""
REPEATED_YAML = """pipeline_id: dupkey
jobs:
  - job_id: a
    command: echo A
    retry_count: 5
    retry_count: 0
"""
REPEATED_TOP = """{"pipeline_id": "one",
"jobs": [{"job_id": "a", "command": "echo A"}],
"pipeline_id": "two"}"""


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("fail.json", REPEATED_JSON, "duplicate key 'depends_on' (line 3)"),
        ("fail.yaml", REPEATED_YAML, "duplicate key 'retry_count' (line 6)"),
        ("top.json", REPEATED_TOP, "duplicate key 'pipeline_id' (line 3)"),
    ],
    ids=["json", "yaml", "top-level"],
)
def test_a_repeated_key_in_a_pipeline_file_is_refused_naming_it_and_its_line(
    tmp_path: Path, redis_client: redis.Redis, name: str, text: str, expected: str
) -> None:
    # given a pipeline file with a key given twice in one mapping
    (tmp_path / name).write_text(text)
    # when it is validated, or run
    for verb in ("validate", "run"):
        refused = trainq(tmp_path, "pipeline", verb, name)
        # then it is refused in one line naming the key and its line, exit 2
        assert refused.returncode == 2 and refused.stdout == "", refused
        assert refused.stderr == f"error: {tmp_path / name}: {expected}\n"
    # and nothing ran
    assert get_registry().list() == []


def test_a_repeated_key_in_config_is_refused(tmp_path: Path, redis_client: redis.Redis) -> None:
    # given a payload that gives its command twice, inline and in a file
    text = '{"command": "echo one",\n "command": "echo two"}'
    (tmp_path / "c.json").write_text(text)
    # when it is submitted
    inline = trainq(tmp_path, "submit", "command", "--config", text)
    from_file = trainq(tmp_path, "submit", "command", "--config", "@c.json")
    # then each is refused naming the key, exit 2, and nothing is enqueued
    assert inline.returncode == 2 and inline.stderr == "error: --config: duplicate key 'command' (line 2)\n"
    assert (
        from_file.returncode == 2 and from_file.stderr == "error: c.json: duplicate key 'command' (line 2)\n"
    )
    assert get_registry().list() == [] and redis_client.keys("command*") == []


def test_a_nul_character_in_a_command_is_refused_before_it_is_queued(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    # given a command and a working directory holding a NUL character (a JSON escape)
    (tmp_path / "p.json").write_text(
        '{"pipeline_id": "nul", "jobs": [{"job_id": "a", "command": "echo a\\u0000b"},'
        ' {"job_id": "b", "command": "echo b", "result_files": ["out\\u0000.txt"]}]}'
    )
    # when they are validated, run or submitted
    validated = trainq(tmp_path, "pipeline", "validate", "p.json")
    run = trainq(tmp_path, "pipeline", "run", "p.json")
    submitted = trainq(tmp_path, "submit", "command", "--config", '{"command": "echo a\\u0000b"}')
    cwd = trainq(tmp_path, "submit", "command", "--config", '{"command": "ls", "cwd": "/tmp\\u0000x"}')
    # then each is refused, naming the job and the field, exit 2
    problems = (
        "error: invalid pipeline:\n"
        "  job 'a': command: the value contains a NUL character\n"
        "  job 'b': result_files: the value contains a NUL character\n"
    )
    assert (validated.returncode, validated.stderr) == (2, problems)
    assert (run.returncode, run.stderr) == (2, problems)
    payload = "error: invalid payload for job type 'command': {}: the value contains a NUL character\n"
    assert (submitted.returncode, submitted.stderr) == (2, payload.format("command"))
    assert (cwd.returncode, cwd.stderr) == (2, payload.format("cwd"))
    # and nothing is enqueued
    assert get_registry().list() == [] and redis_client.keys("command*") == []


def test_an_id_too_long_is_refused_saying_so(tmp_path: Path, redis_client: redis.Redis) -> None:
    # given a pipeline whose id and one job id are letters only, 101 of them
    long_id = "a" * 101
    (tmp_path / "p.json").write_text(
        f'{{"queue_id": "{long_id}", "jobs": [{{"job_id": "{long_id}", "command": "x"}}]}}'
    )
    # when it is validated
    validated = trainq(tmp_path, "pipeline", "validate", "p.json")
    # then each refusal says the length is the problem, exit 2
    assert validated.returncode == 2
    assert validated.stderr.splitlines()[1:] == [
        f"  queue_id {brief(long_id)} is 101 characters; at most 100",
        f"  job {brief(long_id)}: job_id is 101 characters; at most 100",
    ]
    assert get_registry().list() == []
