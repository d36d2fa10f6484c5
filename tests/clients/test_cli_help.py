"""Every command a user can type starts: ``--help`` of each ``trainq`` command and subcommand,
walked from click's command tree (in-process for all, as real processes for a few), and
``trainq worker`` takes its queues and celery options as its help says.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from trainq.cli import main
from trainq.cli.queues import split_worker_args

#: The console scripts pip installs beside this Python, as a user runs them.
TRAINQ = Path(sys.executable).parent / "trainq"
CELERY = Path(sys.executable).parent / "celery"


def command_paths(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """``path`` and the path of every subcommand below it."""
    yield path
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from command_paths(sub, (*path, name))


ALL_COMMANDS = list(command_paths(main))


def test_the_tree_holds_every_documented_verb() -> None:
    names = {" ".join(path) for path in ALL_COMMANDS}
    assert {"worker", "flower", "demo", "up", "pipeline run", "schedule create"} <= names
    assert len(ALL_COMMANDS) > 30


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "trainq")
def test_help_of_every_command(path: tuple[str, ...]) -> None:
    # when a user asks any command for help, then it answers with its usage and exits 0
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="trainq")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert result.output.startswith(f"Usage: trainq {' '.join(path)}".rstrip())


@pytest.mark.parametrize("path", [("worker",), ("demo",), ("pipeline", "run")], ids=" ".join)
def test_help_from_the_console_script_in_another_directory(path: tuple[str, ...], tmp_path: Path) -> None:
    # given the installed console script, run from a directory that is not the checkout
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run(
        [str(TRAINQ), *path, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    # then it prints the help, not a traceback
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "Usage: trainq" in result.stdout


@pytest.mark.parametrize(
    ("args", "queues", "celery_args"),
    [
        (["data"], ["data"], []),
        (["training", "data", "--pool", "solo"], ["training", "data"], ["--pool", "solo"]),
        (
            ["training", "--", "--autoscale", "4,1", "-l", "info"],
            ["training"],
            ["--autoscale", "4,1", "-l", "info"],
        ),
        (["data", "-Psolo", "extra"], ["data"], ["-Psolo", "extra"]),
        # Celery's own form, as in `celery -A trainq worker -Q training,data`
        (["-Q", "training,data", "-l", "info"], ["training", "data"], ["-l", "info"]),
        (["-Qdata"], ["data"], []),
        (["--pool", "solo", "--queues=data"], ["data"], ["--pool", "solo"]),
        (["--queues", "data"], ["data"], []),
    ],
)
def test_worker_takes_queues_then_celery_options(
    args: list[str], queues: list[str], celery_args: list[str]
) -> None:
    # given the arguments as click hands them over, then the queues come first and the rest is celery's
    context = main.commands["worker"].make_context("worker", list(args))
    assert split_worker_args(context.params["args"]) == (tuple(queues), tuple(celery_args))


def test_worker_without_a_queue_is_a_usage_error() -> None:
    for args in ([], ["--pool", "solo"], ["-Q"], ["--queues="]):
        result = CliRunner().invoke(main, ["worker", *args])
        assert result.exit_code == 2 and "QUEUE" in result.output, result.output


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("TRAINQ_LEASE_S", "abc"),
        ("TRAINQ_CONNECT_TIMEOUT_S", "-1"),
        ("TRAINQ_BROKER_TIMEOUT_S", "inf"),
        ("TRAINQ_POOLS", "{training: 1}"),
        ("TRAINQ_RETRY__MAX_RETRIES", "many"),
        ("TRAINQ_LEASE_S", "0.9"),  # less than two heartbeats (the tests' 0.5 s)
        ("TRAINQ_DEFAULT_PRIORITY", "42"),
        ("TRAINQ_KILL_GRACE_S", "-5"),
        ("TRAINQ_WEB_PORT", "0"),
        ("TRAINQ_BROKER_URL", "redis://:s3cret@127.0.0.1:99999/0"),
        ("TRAINQ_REGISTRY_URL", "redis://:s3cret@127.0.0.1:6379/notanint"),
        ("TRAINQ_RESULT_BACKEND", "http://:s3cret@127.0.0.1/0"),
        ("TRAINQ_BROKER_URL", "redis://:s3cret@127.0.0.1:6379/0?x=1"),
        ("TRAINQ_REGISTRY_URL", "redis://:s3cret@127.0.0.1:6379/0?socket_timeout=soon"),
    ],
)
def test_a_setting_that_does_not_parse_is_one_line_naming_it(
    setting: str, value: str, tmp_path: Path
) -> None:
    # given the installed console script in another directory, and a TRAINQ_* variable set wrong
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), setting: value}
    # when a user lists jobs and starts a worker
    for args in (["list"], ["worker", "probe"]):
        result = subprocess.run(
            [str(TRAINQ), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        # then each exits 2 with one line naming the variable, not a traceback
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.startswith(f"error: invalid setting {setting}"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "s3cret" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("command", "setting", "value"),
    [
        (["worker", "-Q", "training", "--loglevel=INFO"], "TRAINQ_LEASE_S", "abc"),
        (["beat"], "TRAINQ_POOLS", "notjson"),
        (["worker", "-Q", "data"], "TRAINQ_WORKER_MODULES", '["workers.dataa"]'),
    ],
    ids=["worker", "beat", "worker-modules"],
)
def test_a_bad_setting_under_plain_celery_is_one_line_naming_it(
    command: list[str], setting: str, value: str, tmp_path: Path
) -> None:
    # given a TRAINQ_* variable set wrong, and the checkout importable from another directory
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), setting: value}
    # when an operator starts the documented ``celery -A trainq ...`` command
    result = subprocess.run(
        [str(CELERY), "-A", "trainq", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    # then it exits 2 with one line naming the variable, not Celery's traceback
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: invalid setting {setting}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_worker_module_that_does_not_exist_is_one_line_naming_it(tmp_path: Path) -> None:
    # given a typo in TRAINQ_WORKER_MODULES; when a user submits from another directory
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env["TRAINQ_WORKER_MODULES"] = '["workers.dataa"]'
    args = [str(TRAINQ), "submit", "data", "--config", "{}"]
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    # then it exits 2 naming the module, not with the import's traceback
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == "error: invalid setting TRAINQ_WORKER_MODULES: no module named 'workers.dataa'\n"


def test_importing_trainq_reads_no_setting(tmp_path: Path) -> None:
    # given a TRAINQ_* variable set wrong, when a program only imports trainq, then the import succeeds
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "TRAINQ_LEASE_S": "abc"}
    result = subprocess.run(
        [sys.executable, "-c", "import trainq"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
