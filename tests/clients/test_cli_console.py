"""The ``trainq`` console script as a user runs it, from a directory of their own: a refusal is one
line and an exit code (no traceback), and nothing of a refused command is enqueued."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.fixtures import Workers, wait_for
from tests.integration.test_registry import record
from trainq import JobState, get_registry
from trainq.broker.quarantine import get_quarantine

#: The console script pip installs beside this Python, and the checkout it must import.
TRAINQ = Path(sys.executable).parent / "trainq"
CHECKOUT = Path(__file__).resolve().parents[2]


def trainq(
    cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run the console script with ``args`` from ``cwd``, given ``stdin``; its result, never raising."""
    return subprocess.run(
        [str(TRAINQ), *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(CHECKOUT), **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def trainq_following(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """The console script with ``args`` from ``cwd`` that runs on (``logs -f``, ``--wait``): its output
    is read as it comes. It takes Ctrl-C as a terminal's foreground command does, also when the tests
    run in the background of a script, whose commands inherit SIGINT ignored."""
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    return subprocess.Popen(
        [str(TRAINQ), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_a_submit_its_key_refuses_exits_1_in_one_line_naming_the_key_and_the_job_holding_it(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    # given a key whose newer jobs are refused while an older one waits, and a job of it waiting
    assert trainq(tmp_path, "limits", "set", "nightly", "--supersede", "refuse").returncode == 0
    first = trainq(tmp_path, "submit", "probe", "--limit-key", "nightly")
    assert first.returncode == 0, first.stderr
    holder = first.stdout.strip()
    # when another job of the key is submitted
    refused = trainq(tmp_path, "submit", "probe", "--config", '{"seconds": 1}', "--limit-key", "nightly")
    # then it exits 1 (valid input, but the job is not run) with one line naming the key and its holder
    assert refused.returncode == 1 and refused.stdout == "", refused
    (line,) = refused.stderr.splitlines()
    assert line.startswith("error: job ") and line.endswith(
        f" was not started: refused: job {holder} of nightly is still waiting or running"
    ), line
    # and that job is recorded cancelled, the first still waiting
    states = {r.id: r.state for r in get_registry().list(limit=10)}
    assert states.pop(holder) is JobState.QUEUED
    assert list(states.values()) == [JobState.CANCELLED]


def test_a_key_held_by_another_job_type_is_refused(tmp_path: Path, redis_client: redis.Redis) -> None:
    # given a probe job submitted with key nightly
    first = trainq(tmp_path, "submit", "probe", "--key", "nightly")
    assert first.returncode == 0, first.stderr
    job_id = first.stdout.strip()
    # when a data job is submitted with the same key
    other = trainq(tmp_path, "submit", "data", "--config", '{"dataset": "iris"}', "--key", "nightly")
    # then it is refused in one line naming the key and the type that holds it, exit 2
    assert other.returncode == 2 and other.stdout == "", other
    assert other.stderr == (
        f"error: idempotency key 'nightly' is already held by job {job_id} of job type 'probe'; "
        "use another key for this job type\n"
    )
    # and nothing of it was recorded or sent; the same type with the key still gets the first job
    assert [r.id for r in get_registry().list()] == [job_id]
    assert redis_client.keys("data*") == []  # the data queue's lists, of any priority
    again = trainq(tmp_path, "submit", "probe", "--config", '{"seconds": 1}', "--key", "nightly")
    assert again.returncode == 0 and again.stdout.strip() == job_id, again


def test_names_a_terminal_cannot_show_are_printed_escaped(tmp_path: Path, redis_client: redis.Redis) -> None:
    # given a job named in French and a pipeline run from a file named so
    ascii_only = {"PYTHONIOENCODING": "ascii"}
    named = trainq(tmp_path, "submit", "probe", "--name", "données-é")
    assert named.returncode == 0, named.stderr
    source = tmp_path / "entraînement.json"
    source.write_text(
        '{"pipeline_id": "enc", "jobs": [{"job_id": "a", "type": "probe"}, '
        '{"job_id": "b", "type": "probe", "depends_on": ["a"]}]}'
    )
    run = trainq(tmp_path, "pipeline", "run", source.name)
    assert run.returncode == 0, run.stderr
    # when they are shown on a terminal that takes ASCII only
    listed = trainq(tmp_path, "list", env=ascii_only)
    status = trainq(tmp_path, "pipeline", "status", run.stdout.strip(), env=ascii_only)
    # then both print, the names escaped, and exit 0
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    assert "donn\\xe9es-\\xe9" in listed.stdout
    assert status.returncode == 0 and status.stderr == "", status.stderr
    assert "entra\\xeenement.json" in status.stdout


def test_a_job_name_with_control_characters_is_refused_in_one_line(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    # given a name that would clear the operator's screen and set the terminal's title
    name = "evil\x1b[2J\x1b]0;PWNED\x07x"
    # when a job is submitted with it
    refused = trainq(tmp_path, "submit", "probe", "--name", name)
    # then it is refused in one line naming the name, escaped, exit 2, and nothing is recorded or sent
    assert refused.returncode == 2 and refused.stdout == "", refused
    assert refused.stderr == f"error: job name {name!r} must be 1 to 200 printable characters\n"
    assert get_registry().list() == [] and redis_client.keys("probe*") == []


def test_record_text_is_printed_with_control_characters_escaped(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    # given a record stored by a release that took any name, with an error and a file name as hostile
    stored = record(
        "old1",
        name="old\x1b[2J[/]",
        state=JobState.FAILED,
        error="boom\x07[red]",
        artifacts=["a\x1b]52;c;Zm9v\x07.txt"],
        traceback="Traceback\n  \x1b[8mhidden\n",
    )
    running = stored.model_copy(update={"id": "old2", "state": JobState.RUNNING, "worker": "w\x1b[2J@host"})
    get_registry().create(stored)
    get_registry().create(running)
    # when they are listed, shown and watched
    listed = trainq(tmp_path, "list")
    shown = trainq(tmp_path, "show", "old1")
    status = trainq(tmp_path, "status")
    # then each prints, exit 0, with no control character but the newlines, and the text as stored
    assert "old\\x1b[2J[/]" in status.stdout and "w\\x1b[2J@host" in status.stdout
    for printed in (listed, shown, status):
        assert printed.returncode == 0 and printed.stderr == "", printed
        assert not any(c in printed.stdout for c in "\x1b\x07"), printed.stdout
    assert "old\\x1b[2J[/]" in listed.stdout
    assert "old\\x1b[2J[/]" in shown.stdout and "boom\\x07[red]" in shown.stdout
    assert "a\\x1b]52;c;Zm9v\\x07.txt" in shown.stdout and "  \\x1b[8mhidden\n" in shown.stdout


@pytest.mark.parametrize(
    ("command", "what"), [("web", "trainq web"), ("metrics", "metrics"), ("flower", "Flower")]
)
def test_a_server_on_an_address_in_use_says_so_in_one_line(
    command: str, what: str, tmp_path: Path, redis_client: redis.Redis
) -> None:
    # given a port another process listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # when a trainq server is started on it
        result = trainq(tmp_path, command, f"--port={port}")
    # then it exits 1 (the environment's problem, not bad input) with one line naming the address
    assert result.returncode == 1 and result.stdout == "", result
    assert result.stderr == f"error: cannot serve {what} on 127.0.0.1:{port}: Address already in use\n"


def test_environment_values_yaml_reads_as_numbers_are_refused_one_line_each(tmp_path: Path) -> None:
    # given a pipeline file whose environment values YAML reads as a float, octal, boolean, null and date
    (tmp_path / "g.yaml").write_text(
        "queue_id: g\njobs:\n  - job_id: s1\n    command: 'true'\n"
        "    environment: {MODEL_VERSION: 1.10, UMASK: 0022, DEBUG: false, N: null, T: 2026-01-27, OK: 'x'}\n"
    )
    # when it is validated from another directory
    result = trainq(tmp_path, "pipeline", "validate", "g.yaml")
    # then each is refused on its own line, naming the variable, what it was read as and the fix; exit 2
    assert result.returncode == 2 and result.stdout == "", result
    lines = result.stderr.splitlines()[1:]
    read = {  # what each variable was read as
        "MODEL_VERSION": "the number 1.1",
        "UMASK": "the number 18",
        "DEBUG": "the boolean false",
        "N": "null",
        "T": "the date 2026-01-27",
    }
    hint = "not a string; quote the value"
    expected = [f"  job 's1': environment.{n}: read as {r}, {hint}" for n, r in read.items()]
    assert lines == expected, result.stderr


@pytest.mark.parametrize(
    "command", [("submit", "data"), ("schedule", "create", "x1", "--every", "1h", "--type", "data")]
)
def test_a_config_file_given_without_at_is_refused_naming_the_at_form(
    command: tuple[str, ...], tmp_path: Path, redis_client: redis.Redis
) -> None:
    # given a payload file in the user's directory
    (tmp_path / "config.json").write_text('{"dataset": "iris"}')
    # when it is given to --config by its name alone, as the older job runner took it
    refused = trainq(tmp_path, *command, "--config", "config.json")
    # then it is refused in one line that says how to read a file, exit 2, and nothing is recorded
    assert refused.returncode == 2 and refused.stdout == "", refused
    assert refused.stderr == "error: --config is not JSON; to read a file, write --config @config.json\n"
    assert get_registry().list() == [] and redis_client.keys("data*") == []


def test_a_job_its_queues_worker_does_not_know_ends_failed_saying_why(
    tmp_path: Path, workers: Workers
) -> None:
    # given a worker of the probe queue started without the module that defines the probe job type
    stale = workers.start("probe", name="stale", env={"TRAINQ_WORKER_MODULES": '["workers.data"]'})
    # when a probe job is submitted from a shell that knows the type
    submitted = trainq(tmp_path, "submit", "probe")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    # then the job ends failed, naming the worker, the queue, the type and the way out
    record = wait_for(lambda: (r := get_registry().get(job_id)).state.finished and r, 30)
    entry = get_quarantine().newest(1)[0]
    assert entry.reason == "unknown task 'trainq.probe'"
    assert record.state is JobState.FAILED and record.worker and record.worker.startswith("stale@")
    assert record.error == (
        f"worker {record.worker} on queue probe does not know job type 'probe': add its module to that "
        f"worker's TRAINQ_WORKER_MODULES and restart it, then `trainq retry {job_id}` "
        f"(message kept: `trainq quarantine show {entry.id}`)"
    )
    shown = trainq(tmp_path, "show", job_id)
    assert shown.returncode == 0 and "failed" in shown.stdout and "does not know job type" in shown.stdout
    # and once the worker runs with the module, a retry runs it
    stale.stop()
    workers.start("probe")
    assert trainq(tmp_path, "retry", job_id).returncode == 0
    wait_for(lambda: get_registry().get(job_id).state is JobState.SUCCEEDED, 30)


def test_a_pipeline_job_that_has_not_started_is_shown_and_followed(
    tmp_path: Path, workers: Workers, redis_client: redis.Redis
) -> None:
    # given a run whose job b waits for job a, which holds until a key is set
    workers.start("probe")
    (tmp_path / "p.json").write_text(
        '{"pipeline_id": "early", "jobs": ['
        '{"job_id": "a", "type": "probe", "config": {"release_key": "early-go"}}, '
        '{"job_id": "b", "type": "probe", "depends_on": ["a"]}]}'
    )
    started = trainq(tmp_path, "pipeline", "run", "p.json")
    assert started.returncode == 0, started.stderr
    job_id = f"{started.stdout.strip()}.b"
    # when b is shown, and its log followed, before it starts
    shown = trainq(tmp_path, "show", job_id)
    follow = trainq_following(tmp_path, "logs", "-f", job_id)
    try:
        # then show names it waiting for a, exit 0
        waiting = f"job {job_id} has not started: it is waiting for a"
        assert shown.returncode == 0 and shown.stderr == "", shown
        assert shown.stdout.split() == ["b", job_id, "waiting", "not", "started", *waiting.split()]
        # and the follower says so, waits for b while a runs, then prints b's log until it ends
        assert follow.stderr is not None and follow.stderr.readline() == f"[{waiting}]\n"
        redis_client.set("early-go", 1)
        out, err = follow.communicate(timeout=60)
        assert follow.returncode == 0 and err == "[succeeded]\n", err
        assert "probe done after 0.0s" in out
    finally:
        follow.kill()  # if a check failed before it ended
    # and an id no run holds is still unknown
    unknown = trainq(tmp_path, "show", f"{started.stdout.strip()}.c")
    assert unknown.returncode == 2 and unknown.stderr == f"error: no job with id '{job_id[:-1]}c'\n"


def test_text_users_give_prints_as_typed_in_every_view(tmp_path: Path, workers: Workers) -> None:
    # given a running job and a waiting one, whose name and concurrency key read as rich markup
    workers.start("probe")
    config = '{"seconds": 30}'
    key = ["--limit-key", "[/y] a*b?[c]", "--max-running", "1"]
    running = trainq(tmp_path, "submit", "probe", "--config", config, "--name", "[/z] run", *key)
    waiting = trainq(tmp_path, "submit", "probe", "--config", config, "--name", "[/x] next", *key)
    assert running.returncode == 0 and waiting.returncode == 0, (running.stderr, waiting.stderr)
    job_id = running.stdout.strip()
    wait_for(lambda: get_registry().get(job_id).state is JobState.RUNNING, 30)
    # then the views operators share print them as typed, where they crashed on the markup
    for view in (["limits", "list"], ["status", "--once"], ["workers"]):
        shown = trainq(tmp_path, *view, env={"COLUMNS": "250"})
        assert shown.returncode == 0, (view, shown.stderr)
        assert "[/y] a*b?[c]" in shown.stdout or view == ["workers"], (view, shown.stdout)
    assert "[/z] run" in shown.stdout, shown.stdout
    trainq(tmp_path, "cancel", job_id)


#: Output a job may print to take over the operator's terminal: colour, a window title (OSC 0), a
#: clipboard write (OSC 52), a terminal query (DCS), a hidden link (OSC 8), an 8-bit OSC (U+009D), a bell.
HOSTILE_OUTPUT = (
    r"printf 'a\033[31mRED\033[0m \033]0;pwned\007 \033]52;c;ZWNobw==\007 \033P+q544e\033\\ "
    r"\033]8;;http://evil/\033\\link\033]8;;\033\\ \302\235x\tend\007\n'"
)


def test_job_output_reaches_the_terminal_as_text_escape_sequences_escaped(
    tmp_path: Path, workers: Workers
) -> None:
    # given a command job whose output holds escape sequences of every kind
    workers.start("command")
    submitted = trainq(tmp_path, "submit", "command", "--config", json.dumps({"command": HOSTILE_OUTPUT}))
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    wait_for(lambda: get_registry().get(job_id).state is JobState.SUCCEEDED, 30)
    # when its log is printed, and followed
    printed = trainq(tmp_path, "logs", job_id)
    followed = trainq(tmp_path, "logs", "-f", job_id)
    # then each prints the line with every control character but the tab escaped, exit 0
    line = (
        r"a\x1b[31mRED\x1b[0m \x1b]0;pwned\x07 \x1b]52;c;ZWNobw==\x07 \x1bP+q544e\x1b\ "
        r"\x1b]8;;http://evil/\x1b\link\x1b]8;;\x1b\ \x9dx" + "\tend" + r"\x07" + "\n"
    )
    assert printed.returncode == 0 and printed.stderr == "" and printed.stdout == line, printed
    assert followed.returncode == 0 and followed.stdout == line, followed
    assert followed.stderr == "[succeeded]\n"


def test_cancelling_a_pipeline_job_that_has_not_started_names_the_run_to_cancel(tmp_path: Path) -> None:
    # given a run whose job b waits for job a (queued: no worker takes it)
    (tmp_path / "p.json").write_text(
        '{"pipeline_id": "cw", "jobs": [{"job_id": "a", "type": "probe"}, '
        '{"job_id": "b", "type": "probe", "depends_on": ["a"]}]}'
    )
    started = trainq(tmp_path, "pipeline", "run", "p.json")
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    # when b is cancelled alone
    cancelled = trainq(tmp_path, "cancel", f"{run_id}.b")
    # then it is refused in one line saying b has not started and how to stop it, exit 2
    assert cancelled.returncode == 2 and cancelled.stdout == "", cancelled
    assert cancelled.stderr == (
        f"error: job {run_id}.b has not started: it is waiting for a; to stop it, cancel its run: "
        f"`trainq pipeline cancel {run_id}`\n"
    )
    # and b still waits, while an id no run holds is still unknown
    assert "waiting" in trainq(tmp_path, "show", f"{run_id}.b").stdout
    unknown = trainq(tmp_path, "cancel", f"{run_id}.c")
    assert unknown.returncode == 2 and unknown.stderr == f"error: no job with id '{run_id}.c'\n"


def test_a_start_time_past_is_refused_and_a_delayed_job_says_when_it_is_due(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    # given a start time with a mistyped year, one half a minute ago (clocks apart), and a delay
    past = trainq(tmp_path, "submit", "probe", "--at", "2020-01-01T00:00:00")
    just_gone = (datetime.now() - timedelta(seconds=30)).isoformat(timespec="seconds")
    recent = trainq(tmp_path, "submit", "probe", "--at", just_gone)
    delayed = trainq(tmp_path, "submit", "probe", "--delay", "1h")
    # then the mistyped year is refused in one line saying how long ago it is, exit 2
    assert past.returncode == 2 and past.stdout == "", past
    assert re.fullmatch(
        r"error: --at 2020-01-01T00:00:00 is \d+y \d+d ago: the job would run now; "
        r"give a time to come, or leave --at out\n",
        past.stderr,
    ), past.stderr
    # and half a minute ago is taken, the job queued now, with nothing said
    assert recent.returncode == 0 and recent.stderr == "", recent
    assert get_registry().get(recent.stdout.strip()).state is JobState.QUEUED
    # and the delayed job's id is the one line on stdout, when it is due on stderr, and show says it too
    assert delayed.returncode == 0 and re.fullmatch(r"[0-9a-f]+\n", delayed.stdout), delayed
    due = re.fullmatch(r"due (\d\d-\d\d \d\d:\d\d:\d\d) \(in (59m \d+s|1h 0m)\)\n", delayed.stderr)
    assert due, delayed.stderr
    shown = trainq(tmp_path, "show", delayed.stdout.strip())
    assert re.search(rf"due +{due[1]} \(in (59m \d+s|1h 0m)\)", shown.stdout), shown.stdout
    assert len(get_registry().list()) == 2


def test_listing_by_a_type_or_queue_nothing_knows_says_so(tmp_path: Path, redis_client: redis.Redis) -> None:
    # given one probe job and no worker
    assert trainq(tmp_path, "submit", "probe").returncode == 0
    # when jobs are listed by a type name from another system, by a queue nothing has, and by known ones
    no_type = trainq(tmp_path, "list", "--type", "model_training")
    no_queue = trainq(tmp_path, "list", "--queue", "nosuch")
    known = [trainq(tmp_path, "list", option, "training") for option in ("--type", "--queue")]
    # then the type is refused as submit refuses it, exit 2
    assert no_type.returncode == 2 and no_type.stdout == "", no_type
    assert no_type.stderr.startswith("error: unknown job type 'model_training'; known types: command, ")
    # and the queue gets a note naming the known ones, exit 0 (queues are made by use)
    assert no_queue.returncode == 0 and "id" in no_queue.stdout, no_queue
    assert no_queue.stderr.startswith("note: no job, worker or job type has queue 'nosuch' (known: "), (
        no_queue
    )
    assert "probe" in no_queue.stderr and "training" in no_queue.stderr
    # and a known type or queue with no jobs lists nothing without a word
    for listed in known:
        assert listed.returncode == 0 and listed.stderr == "", listed


def test_a_queued_job_says_its_queue_has_no_worker_or_is_paused(tmp_path: Path, workers: Workers) -> None:
    # given a run whose one job goes to a queue no worker was started for, followed with --wait
    (tmp_path / "q.json").write_text(
        '{"pipeline_id": "gpuq", "jobs": [{"job_id": "t", "type": "probe", "queue": "gpu-training"}]}'
    )
    follow = trainq_following(tmp_path, "pipeline", "run", "q.json", "--wait")
    try:
        assert follow.stdout is not None
        run_id = follow.stdout.readline().strip()
        held = "queue gpu-training has no live worker (start one: trainq worker gpu-training)"
        # then --wait, pipeline status and show each say what holds it
        assert follow.stdout.readline().split(None, 2)[2] == f"t                    queued: {held}\n"
        status = trainq(tmp_path, "pipeline", "status", run_id, env={"COLUMNS": "250"})
        assert status.returncode == 0 and held in status.stdout, status
        shown = trainq(tmp_path, "show", f"{run_id}.t")
        assert shown.returncode == 0 and f"why queued    {held}" in shown.stdout, shown
        # and once a worker serves the queue, the job runs and the run ends, exit 0
        workers.start("gpu-training")
        out, err = follow.communicate(timeout=60)
        assert follow.returncode == 0, (out, err)
        assert "t                    succeeded" in out and out.endswith(f"run {run_id} succeeded\n"), out
    finally:
        follow.kill()  # if a check failed before it ended
    # and a job of a paused queue says the queue is paused (so a worker started for it would skip it)
    assert trainq(tmp_path, "pause", "gpu-training").returncode == 0
    submitted = trainq(tmp_path, "submit", "probe", "--queue", "gpu-training")
    shown = trainq(tmp_path, "show", submitted.stdout.strip())
    assert "why queued    queue gpu-training is paused (trainq resume gpu-training)" in shown.stdout, shown


def test_a_queued_job_of_a_killed_workers_queue_says_no_live_worker_reads_it(
    tmp_path: Path, workers: Workers
) -> None:
    # given the only worker of a queue, killed (SIGKILL: its record of the queue stays behind)
    workers.start("gpu-inference").kill()
    # when a job is sent to that queue
    submitted = trainq(tmp_path, "submit", "probe", "--queue", "gpu-inference")
    assert submitted.returncode == 0, submitted.stderr
    # then, once the dead worker's count has run out, show says no live worker reads the queue
    held = "why queued    queue gpu-inference has no live worker (start one: trainq worker gpu-inference)"
    shown = wait_for(
        lambda: held in (out := trainq(tmp_path, "show", submitted.stdout.strip())).stdout and out,
        30,
        message="the note on the dead worker's queue",
    )
    assert shown.returncode == 0, shown


def test_ctrl_c_in_a_follower_stops_it_and_says_the_work_goes_on(tmp_path: Path, workers: Workers) -> None:
    # given a running job reporting progress, followed with logs -f
    workers.start("probe")
    job_id = trainq(tmp_path, "submit", "probe", "--config", '{"seconds": 30, "steps": 30}').stdout.strip()
    follow = trainq_following(tmp_path, "logs", "-f", job_id)
    said: list[str] = []
    assert follow.stderr is not None
    reader = threading.Thread(target=lambda: said.extend(follow.stderr or ()), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(line.startswith("[progress]") for line in said), 30, message="it follows")
        # when the user presses Ctrl-C
        follow.send_signal(signal.SIGINT)
        follow.wait(timeout=20)
        reader.join(timeout=5)
        # then it exits 130 (not 1, "the work failed") saying so, and the job runs on
        assert follow.returncode == 130, said
        assert said[-1] == "interrupted: what was submitted goes on (trainq cancel stops it)\n"
        assert get_registry().get(job_id).state is JobState.RUNNING
    finally:
        follow.kill()
        trainq(tmp_path, "cancel", job_id)
