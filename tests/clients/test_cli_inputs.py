"""What a user writes that trainq must refuse before anything runs, through the console script from a
directory of their own: a repeated key in a pipeline file or ``--config``, a NUL character in a
command, an id too long. Each is one line naming the problem, exit 2, and nothing is enqueued."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import redis

from tests.clients.test_cli_console import CHECKOUT, TRAINQ, trainq
from tests.fixtures import Workers
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


#: A pipeline whose one command prints its working directory.
PWD_PIPELINE = "pipeline_id: {id}\njobs:\n  - job_id: a\n    command: pwd\n"


def _logged_pwd(cwd: Path, run: subprocess.CompletedProcess[str]) -> str:
    """The directory the command job ``a`` of a run started with ``--wait`` printed."""
    assert run.returncode == 0, run
    logs = trainq(cwd, "logs", f"{run.stdout.splitlines()[0]}.a")
    return logs.stdout.strip()


def test_a_pipeline_file_reached_through_a_symlink_or_a_pipe_runs_where_the_user_said(
    tmp_path: Path, workers: Workers
) -> None:
    # given a pipeline file in repo/, symlinked into proj/, and a user in another directory
    workers.start("command")
    (tmp_path / "repo").mkdir()
    (tmp_path / "proj").mkdir()
    (tmp_path / "repo" / "p.yaml").write_text(PWD_PIPELINE.format(id="sl"))
    (tmp_path / "proj" / "p.yaml").symlink_to("../repo/p.yaml")
    # when the symlink is run, then its command runs in the symlink's directory, not the target's
    linked = trainq(tmp_path, "pipeline", "run", "proj/p.yaml", "--wait")
    assert _logged_pwd(tmp_path, linked) == str(tmp_path / "proj")
    # and a pipeline read from stdin runs in the current directory
    piped = trainq(tmp_path / "proj", "pipeline", "run", "-", "--wait", stdin=PWD_PIPELINE.format(id="in"))
    assert _logged_pwd(tmp_path, piped) == str(tmp_path / "proj")


def test_a_pipeline_file_from_a_pipe_is_read_as_a_file_is(tmp_path: Path, redis_client: redis.Redis) -> None:
    # given a valid pipeline and a broken one
    (tmp_path / "p.json").write_text('{"pipeline_id": "piped", "jobs": [{"job_id": "a", "command": "true"}]}')
    broken = '{"pipeline_id": "piped", "jobs": [{"job_id": "a", "command": "true"}'
    # when each is validated from a process substitution, /dev/stdin and -
    substituted = subprocess.run(
        ["bash", "-c", f"'{TRAINQ}' pipeline validate <(cat p.json)"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = (tmp_path / "p.json").read_text()
    from_stdin = [trainq(tmp_path, "pipeline", "validate", name, stdin=text) for name in ("/dev/stdin", "-")]
    refused = trainq(tmp_path, "pipeline", "validate", "-", stdin=broken)
    # then the valid one is read from each, exit 0
    for result in (substituted, *from_stdin):
        assert result.returncode == 0 and result.stdout == "ok: 1 jobs\na [command]\n", result
    # and the broken one is refused naming stdin, as a file's would name the file
    assert refused.returncode == 2 and refused.stderr.startswith("error: stdin is not valid YAML"), refused
    assert get_registry().list() == []


def test_a_fifo_nobody_writes_to_is_refused_naming_it(tmp_path: Path) -> None:
    # given a named pipe with no writer
    os.mkfifo(tmp_path / "queue.yaml")
    # when it is validated
    result = trainq(tmp_path, "pipeline", "validate", "queue.yaml")
    # then it is refused in one line naming the path given, exit 2, instead of waiting forever
    assert result.returncode == 2 and result.stdout == "", result
    path = tmp_path / "queue.yaml"
    assert result.stderr == f"error: cannot read pipeline file {path}: it did not end within 1 s\n"


def test_ids_yaml_reads_as_numbers_or_booleans_are_refused_saying_so(tmp_path: Path) -> None:
    # given a pipeline whose ids YAML reads as a float, a boolean and an integer
    (tmp_path / "norway.yaml").write_text(
        "pipeline_id: 2026.01\njobs:\n  - {job_id: no, command: echo no}\n"
        "  - {job_id: 007, command: echo 7, depends_on: [no]}\n"
    )
    # when it is validated
    result = trainq(tmp_path, "pipeline", "validate", "norway.yaml")
    # then each id says what YAML read it as and to quote it, exit 2
    hint = "not a string; quote the value"
    assert result.returncode == 2 and result.stderr.splitlines()[1:] == [
        f"  pipeline_id: read as the number 2026.01, {hint}",
        f"  job #1: job_id: read as the boolean false, {hint}",
        f"  job #2: job_id: read as the number 7, {hint}",
        f"  job #2: depends_on.0: read as the boolean false, {hint}",
    ], result.stderr


def test_every_environment_problem_is_listed_at_once(tmp_path: Path) -> None:
    # given an environment with an invalid name beside two values YAML reads as other than strings
    (tmp_path / "e2.yaml").write_text(
        "pipeline_id: e1\njobs:\n  - {job_id: i, command: echo i, environment: {A=B: x, V: 1.10, W: yes}}\n"
    )
    # when it is validated
    result = trainq(tmp_path, "pipeline", "validate", "e2.yaml")
    # then all three are listed in one round
    assert result.returncode == 2 and result.stderr.splitlines()[1:] == [
        "  job 'i': environment: environment name 'A=B' is invalid: "
        "use letters, digits and '_', not starting with a digit",
        "  job 'i': environment.V: read as the number 1.1, not a string; quote the value",
        "  job 'i': environment.W: read as the boolean true, not a string; quote the value",
    ], result.stderr


def test_a_value_of_the_wrong_type_is_one_line_in_the_users_words(tmp_path: Path) -> None:
    # given fields YAML reads as a list, a date, booleans and a number where other types are meant
    (tmp_path / "tag5.yaml").write_text(
        "pipeline_id: t\njobs:\n"
        "  - {job_id: a, command: echo, timeout: [1h], retry_count: yes, result_files: [1]}\n"
        "  - {job_id: b, command: echo, timeout: 2026-01-27, priority: true}\n"
        "  - {job_id: c, command: echo, limit: {key: k, max_running: true}}\n"
    )
    # when it is validated
    result = trainq(tmp_path, "pipeline", "validate", "tag5.yaml")
    # then each field is one line naming what was expected and what YAML read, no type names of trainq's
    duration = "expected a duration such as '1h' or a number of seconds"
    assert result.returncode == 2 and result.stderr.splitlines()[1:] == [
        f"  job 'a': timeout: {duration}, got a list",
        "  job 'a': result_files.0: expected a glob or a mapping with path and required, got the number 1",
        "  job 'a': retry_count: expected an integer, got the boolean true",
        f"  job 'b': timeout: {duration}, got the date 2026-01-27",
        "  job 'b': priority: expected an integer, got the boolean true",
        "  job 'c': limit: max_running: expected an integer, got the boolean true",
    ], result.stderr


def test_a_boolean_for_a_number_in_config_is_refused(tmp_path: Path, redis_client: redis.Redis) -> None:
    # given a payload whose epochs is a boolean (pydantic would read true as 1 epoch)
    refused = trainq(tmp_path, "submit", "training", "--config", '{"epochs": true, "model": "sgd"}')
    # then it is refused naming the field, exit 2, and nothing is enqueued
    assert refused.returncode == 2 and refused.stderr == (
        "error: invalid payload for job type 'training': epochs: expected an integer, got the boolean true\n"
    ), refused
    assert get_registry().list() == []


#: A password planted in each malformed URL below: no output may show it.
PLANTED = "Sup3rS3cretRedisPW"
MALFORMED_URLS = [
    f"redis:/:{PLANTED}@127.0.0.1:6451/0",  # one slash: the password reads as the database
    f"redis:///:{PLANTED}@127.0.0.1:6451/0",
    f"redis://:{PLANTED}/0@127.0.0.1:6451",  # the password reads as the port
    f"redis://:{PLANTED}\uff03@127.0.0.1/0",  # a host character NFKC refuses
    f"amqp:/guest:{PLANTED}@127.0.0.1:5672//",  # one slash: accepted, then echoed when unreachable
    f"sentinel://:{PLANTED}@127.0.0.1:26379/x;sentinel://:{PLANTED}@127.0.0.1:26380",
]


@pytest.mark.parametrize("setting", ["TRAINQ_BROKER_URL", "TRAINQ_RESULT_BACKEND", "TRAINQ_REGISTRY_URL"])
def test_a_malformed_url_is_refused_in_one_line_that_never_shows_its_password(
    tmp_path: Path, setting: str
) -> None:
    for url in MALFORMED_URLS:
        if url.startswith("amqp") and setting != "TRAINQ_BROKER_URL":
            continue  # only the broker may be RabbitMQ; elsewhere it is refused for its scheme already
        # given a URL setting with a password, mistyped
        env = {setting: url}
        # when the CLI reads it, and a worker (which reads the settings as the CLI does) the broker's
        results = [trainq(tmp_path, "list", env=env)]
        if setting == "TRAINQ_BROKER_URL":
            worker = subprocess.run(
                [str(TRAINQ.parent / "celery"), "-A", "trainq", "worker", "-Q", "data"],
                cwd=tmp_path,
                env={**os.environ, "PYTHONPATH": str(CHECKOUT), **env},
                capture_output=True,
                text=True,
                timeout=60,
            )
            results.append(worker)
        # then each ends with exit 2 and one line naming the setting, and never shows the password
        for result in results:
            output = result.stdout + result.stderr
            assert PLANTED not in output, (url, output)
            assert result.returncode == 2 and output.count("\n") == 1, (url, output)
            assert output.startswith(f"error: invalid setting {setting}: "), (url, output)


@pytest.mark.parametrize(
    "options",
    ["ssl_cert_reqs=bogus", "ssl_min_version=bogus", "socket_timeout=abc", "health_check_interval=x"],
)
def test_a_redis_url_option_value_redis_refuses_is_one_line_naming_the_option(
    tmp_path: Path, options: str
) -> None:
    # given a Redis URL whose option has a value redis-py refuses when it connects
    env = {"TRAINQ_BROKER_URL": f"rediss://:{PLANTED}@127.0.0.1:6451/0?{options}"}
    # when the CLI reads it
    result = trainq(tmp_path, "list", env=env)
    # then it is one line naming the option, exit 2, no traceback and no password
    name = options.partition("=")[0]
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert name in result.stderr and "Traceback" not in result.stderr and PLANTED not in result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "the pipeline is empty: give pipeline_id and jobs"),
        ("# only a comment\n", "the pipeline is empty: give pipeline_id and jobs"),
        ("- a\n- b\n", "got a list"),
        ("just words\n", "got the text 'just words'"),
        ("5\n", "got the number 5"),
    ],
    ids=["empty", "comment", "list", "text", "number"],
)
def test_a_pipeline_file_that_holds_no_mapping_is_refused_in_the_users_words(
    tmp_path: Path, content: str, expected: str
) -> None:
    # given a pipeline file that is empty or holds something other than a mapping
    path = tmp_path / "pipeline.yaml"
    path.write_text(content)
    # when it is validated, then the problem is said in the file's words, never a Python type name
    result = trainq(tmp_path, "pipeline", "validate", str(path))
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert "NoneType" not in result.stderr and "Traceback" not in result.stderr


def test_dev_null_as_a_pipeline_file_is_empty(tmp_path: Path) -> None:
    # when /dev/null is validated as a pipeline, then it is empty, exit 2
    result = trainq(tmp_path, "pipeline", "validate", "/dev/null")
    assert result.returncode == 2 and "the pipeline is empty" in result.stderr, result.stderr
