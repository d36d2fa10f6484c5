"""Every ``trainq`` and ``celery`` command the README, docs/ and deploy/ give users works as written.

- Each one parses as its program parses it (compose and Kubernetes commands are checked this far),
  and each command the running text names (`trainq logs JOB [-f]`) exists with the options shown.
- The short ones from the docs run, in the order the docs give them, against a real Redis and a
  real worker: they exit 0 (2 where the docs show an ``error:``) and print what the docs show.
- The long-running ones (workers, Beat, Flower, the metrics exporter) start, answer, and stop on
  SIGTERM; Flower and the exporter are moved to 127.0.0.1 and a free port.

Placeholders (``JOB``, ``RUN``, the docs' example run ids, ``NAME``...) take real values from the
commands run before them. ``NOT_RUN`` lists the few commands that only parse here, and why.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from tests.clients.documented import Documented, Mention, commands, long_options, mentions, parse, resolve
from tests.fixtures import ROOT, Process, Processes, Workers, free_port, wait_for
from tests.integration.test_monitoring import http_get
from trainq import JobState, get_registry
from trainq.celery import app
from trainq.cli import main
from trainq.pipelines.pipeline import run_pipeline_file
from trainq.pipelines.runs import RunState, get_runs

DOCUMENTED = commands()
#: Commands that only parse here, each with the test that runs it or the reason it cannot run.
NOT_RUN = {
    "trainq demo": "the whole ML demo (about a minute): tests/e2e/test_demo.py runs it",
    "trainq up": "the whole stack: tests/e2e/test_up.py runs it",
    "trainq up --flower-port 5556 --no-beat --queue training --queue data": "its pools would take the "
    "node names of the documented workers started beside it (training@host, data@host); "
    "tests/e2e/test_up.py runs `trainq up`",
    "trainq pipeline run examples/ml-pipeline.yaml --wait": "the demo's pipeline (15 paced epochs): "
    "tests/e2e/test_demo.py runs the same file",
    "trainq workers --timeout 3": "`trainq workers` runs here; this only waits longer for replies (2 x 3 s)",
}
LONG_RUNNING = {
    "trainq": {"up", "worker", "flower", "metrics", "demo", "web"},
    "celery": {"worker", "beat", "flower"},
}
#: Values for placeholders that do not come from an earlier command.
FIXED = {
    "FILE": "examples/diamond.yaml",
    "pipeline.yaml": "quick.yaml",
    "NAME": "nightly-sgd",
    "DIR": "results",
    "%i": "data",
    "<queue>": "data",
    "$HOSTNAME": socket.gethostname(),
}
#: The run ids the docs show as examples (``diamond-3fa2c1...``), standing for a real run's id.
EXAMPLE_RUNS = {w for c in DOCUMENTED for w in c.argv if re.fullmatch(r"diamond-[0-9a-f]{6,}", w)}


def run_placeholders(run_id: str) -> dict[str, str]:
    """``run_id`` for each word that stands for a pipeline run."""
    return {"RUN": run_id, **dict.fromkeys(EXAMPLE_RUNS, run_id)}


#: Placeholder values for parsing only.
DUMMY = {**FIXED, "JOB": "0123456789abcdef", **run_placeholders("diamond-000000")}


def ids(command: Documented) -> str:
    return f"{command.where} {command.line}"


def is_long_running(command: Documented) -> bool:
    program, words = command.argv[0], set(command.argv[1:])
    return bool(LONG_RUNNING[program] & words) and "inspect" not in words and "control" not in words


def test_the_docs_and_deploy_files_hold_the_commands_users_type() -> None:
    lines = {command.line for command in DOCUMENTED}
    kinds = {command.kind for command in DOCUMENTED}
    assert {"docs", "systemd", "compose", "k8s", "docker"} <= kinds
    assert {"trainq worker %i", "celery -A trainq beat -l info", "trainq pipeline list"} <= lines
    assert len(DOCUMENTED) > 80
    assert set(NOT_RUN) <= lines, "an allow-listed command is no longer documented"
    assert EXAMPLE_RUNS, "the docs show no example run id to stand for a real one"


@pytest.mark.parametrize("command", DOCUMENTED, ids=ids)
def test_every_documented_command_parses(command: Documented) -> None:
    # when the program parses the command as written (placeholders filled), then it accepts it
    parse(command.with_values(DUMMY).argv)


def test_documented_commands_run_against_a_real_stack(
    workers: Workers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a worker for every shipped queue, and the examples where the docs' paths find them
    workers.start("training", "data", "detection", "command", concurrency=2)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "data.json").write_text('{"dataset": "iris"}')
    (tmp_path / "quick.yaml").write_text(
        "pipeline_id: quick\njobs:\n"
        "  - {job_id: only, command: 'echo ok > out.txt', result_files: [out.txt]}\n"
    )
    monkeypatch.chdir(tmp_path)
    values = dict(FIXED)
    ran = 0
    for documented in DOCUMENTED:
        if documented.kind != "docs" or documented.argv[0] != "trainq" or is_long_running(documented):
            continue
        if documented.line in NOT_RUN:
            continue
        command = documented.with_values({**values, **run_for(documented, tmp_path)})
        # when a user runs it as the docs give it
        result = CliRunner().invoke(main, list(command.argv[1:]), env=dict(command.env), prog_name="trainq")
        ran += 1
        # then it exits 0, or 2 where the docs show it refusing, and prints what the docs show
        expected = 2 if documented.output.startswith("error:") else 0
        assert result.exit_code == expected, f"{ids(command)}:\n{result.output}{result.exception!r}"
        assert documented.output in result.output, ids(command)
        if result.exit_code == 0:
            remember(command, result.output, values)
    assert ran >= 40
    # and what they did is in the registry: the README's training job ran to the end
    assert get_registry().get(values["JOB"]).state is JobState.SUCCEEDED


#: Runs the docs' ``resume`` and ``cancel`` act on: one with a failed job, one still running.
RUNS_TO_ACT_ON = {
    "resume": "pipeline_id: flaky\njobs:\n  - {job_id: bad, command: exit 3, retry_count: 0}\n"
    "  - {job_id: after, command: 'true', depends_on: [bad]}\n",
    "cancel": "pipeline_id: long\njobs:\n  - {job_id: wait, command: sleep 60}\n",
}


def run_for(command: Documented, tmp_path: Path) -> dict[str, str]:
    """For ``pipeline resume|cancel RUN``, a fresh run of the kind the verb is for (a finished diamond
    run has nothing to resume or cancel)."""
    verb = command.argv[2] if command.argv[1:2] == ("pipeline",) else ""
    if verb not in RUNS_TO_ACT_ON:
        return {}
    path = tmp_path / f"{verb}.yaml"
    path.write_text(RUNS_TO_ACT_ON[verb])
    run_id = run_pipeline_file(path)
    wanted = RunState.FAILED if verb == "resume" else RunState.RUNNING
    wait_for(lambda: get_runs().status(run_id).state is wanted, 30, 0.1, message=f"{run_id} {wanted}")
    return run_placeholders(run_id)


def remember(command: Documented, output: str, values: dict[str, str]) -> None:
    """Take the ids a command printed as the values of the placeholders that follow it."""
    words = command.argv[1:3]
    if words[0] == "submit":
        values["JOB"] = output.split()[-1]
    elif words == ("pipeline", "run") and "--json" not in command.argv:
        values.update(run_placeholders(output.split()[0]))


def localized(argv: tuple[str, ...], port: int) -> list[str]:
    """``argv`` with Flower, the exporter, trainq web and ``up``'s Flower on 127.0.0.1 and ``port``."""
    values = {"--address": "127.0.0.1", "--port": str(port), "--flower-port": str(port)}
    out: list[str] = []
    words = iter(argv)
    for word in words:
        name = word.split("=", 1)[0]
        if name in values:
            out.append(f"{name}={values[name]}")
            if "=" not in word:
                next(words)
        else:
            out.append(word)
    server = next((w for w in ("flower", "web") if w in out), None)
    if server and not any(w.startswith("--port") for w in out):
        at = out.index(server) + 1
        out[at:at] = ["--address=127.0.0.1", f"--port={port}"]
    return out


def test_documented_long_running_commands_start_answer_and_stop(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    # given every distinct long-running command of the docs (Flower and the exporter on 127.0.0.1)
    documented = {c.line: c for c in DOCUMENTED if c.kind == "docs" and is_long_running(c)}
    running = Processes(tmp_path)
    checks = []
    try:
        for n, (line, command) in enumerate(sorted(documented.items())):
            if line in NOT_RUN:
                continue
            port = free_port()
            argv = localized(command.with_values(FIXED).argv, port)
            program = [sys.executable, "-m", argv[0], *argv[1:]]
            env = {**dict(command.env), "PYTHONPATH": str(ROOT), "TRAINQ_HOME": str(tmp_path / f"home{n}")}
            # when each is started from a directory that is not the checkout
            process = Process(program, tmp_path / f"{n}.log", env, cwd=tmp_path)
            running.started.append(process)
            checks.append((line, process, answering(argv, port, process)))
        # then each comes up and answers: a worker is ready, Beat starts, Flower and metrics serve HTTP
        for line, process, answers in checks:
            wait_for(lambda: answers() or not process.alive(), 60, 0.2, message=line)  # noqa: B023
            assert process.alive(), f"{line} exited:\n{process.output()}"
        # and one Beat holds the schedule lock
        assert redis_client.exists(app.conf.redbeat_lock_key)
    finally:
        # and each stops on SIGTERM, as systemd, compose and Kubernetes stop it
        running.stop_all()
    assert {"celery -A trainq beat", "trainq flower"} <= {line for line, *_ in checks}
    for line, process, _ in checks:
        assert process.popen.returncode in (0, -signal.SIGTERM), f"{line} did not stop:\n{process.output()}"


def answering(argv: list[str], port: int, process: Process) -> Callable[[], object]:
    """A check that the started command serves: HTTP for Flower, metrics and web, a ping for a worker."""
    if "flower" in argv:
        prefix = next((w.split("=", 1)[1] for w in argv if w.startswith("--url_prefix=")), "")
        url = f"http://127.0.0.1:{port}/{prefix}/healthcheck".replace("//healthcheck", "/healthcheck")
        return lambda: http_get(url)[0] in (200, 401)
    if "metrics" in argv:
        return lambda: http_get(f"http://127.0.0.1:{port}/metrics")[0] == 200
    if "web" in argv:
        return lambda: http_get(f"http://127.0.0.1:{port}/api/v1/health")[0] in (200, 401)
    if "worker" in argv:  # without -l info a worker logs nothing when ready: ask it by its node name
        node = argv[argv.index("-n") + 1].replace("%h", socket.gethostname())
        return lambda: app.control.ping([node], timeout=0.5)
    return lambda: "celery beat v" in process.output()


@pytest.mark.parametrize("mention", list(mentions()), ids=lambda m: f"{m.where} {m.text}")
def test_every_command_named_in_the_text_exists_with_its_options(mention: Mention) -> None:
    # given a command named in running text, e.g. `trainq logs JOB [-f]` or `trainq clean --keep N`
    command, path = resolve(mention.words)
    # then its verbs name a real command and each --option it shows is one of that command's
    assert len(path) > 1 or mention.words == path, f"{mention.where}: no command {mention.text!r}"
    passes_options_on = command.context_settings.get("ignore_unknown_options")  # worker, flower
    if mention.words[0] == "trainq" and not passes_options_on:
        known = {opt for param in command.params for opt in param.opts} | {"--help"}
        assert long_options(mention.text) <= known, f"{mention.where}: {' '.join(path)} has no such option"
