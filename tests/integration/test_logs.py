"""``trainq logs`` without ``-f`` on real Redis: every stored line, and a word on trimmed ones."""

from __future__ import annotations

from click.testing import CliRunner

from tests.fixtures import Workers, wait_for
from trainq.cli import main
from trainq.job.context import LOG_LINE_MAX_CHARS, OUTBOX_MAX_LINES
from trainq.job.record import JobState
from trainq.ops.control import submit
from trainq.store.registry import Registry, trimmed_lines


def printed(job_id: str) -> list[str]:
    """The job's log as ``trainq logs`` prints it."""
    result = CliRunner().invoke(main, ["logs", job_id])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_logs_prints_every_stored_line(registry: Registry) -> None:
    # given a job with 18,002 log lines (more than one page)
    job_id = submit("probe", {}, countdown=3600)
    registry.append_log(job_id, [f"line {n}" for n in range(18_002)])
    # when its log is printed
    result = CliRunner().invoke(main, ["logs", job_id])
    # then every line is there, in order
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 18_002
    assert lines[0] == "line 0" and lines[-1] == "line 18001"
    assert result.stderr == ""


def test_logs_says_how_many_lines_the_cap_trimmed(registry: Registry) -> None:
    # given a job whose log outgrew a cap of 100 lines
    job_id = submit("probe", {}, countdown=3600)
    capped = Registry(registry.client, registry.keys, log_max_lines=100)
    capped.append_log(job_id, [f"line {n}" for n in range(1_000)])
    # when its log is printed
    result = CliRunner().invoke(main, ["logs", job_id])
    # then the kept lines are printed and the rest are counted, not silently missing
    kept = result.stdout.splitlines()
    assert kept[-1] == "line 999" and len(kept) < 1_000
    assert f"[{1_000 - len(kept)} earlier lines not kept" in result.stderr
    assert "TRAINQ_LOG_MAX_LINES" in result.stderr


def test_trimmed_lines_are_counted_from_a_redis_6_reply(registry: Registry) -> None:
    # given a log of 1,000 lines under a cap of 100, and its XINFO STREAM reply as Redis 6 gives it
    # (Redis 7's reply less ``entries-added``, a field Redis 6 does not have)
    job_id = submit("probe", {}, countdown=3600)
    capped = Registry(registry.client, registry.keys, log_max_lines=100)
    for start in range(0, 1_000, 250):
        capped.append_log(job_id, [f"line {n}" for n in range(start, start + 250)])
    info = registry.client.xinfo_stream(registry.keys.log(job_id))
    redis_6 = {k: v for k, v in info.items() if k != "entries-added"}
    appended = int(registry.client.get(registry.keys.log_added(job_id)))
    # when the trimmed lines are counted
    trimmed = trimmed_lines(redis_6, appended)
    # then they are the lines appended less those the stream keeps, as Redis 7 counts them
    assert trimmed == 1_000 - redis_6["length"] > 0
    assert trimmed == trimmed_lines(info, appended) == registry.log_dropped(job_id)
    # and a log written before lines were counted says nothing rather than a wrong number
    assert trimmed_lines(redis_6, None) == 0


def test_a_command_printing_faster_than_the_registry_takes_lines_keeps_every_one(
    workers: Workers, registry: Registry
) -> None:
    # given a command worker, and a command printing half again as many lines as the outbox holds, at once
    workers.start("command")
    total = OUTBOX_MAX_LINES * 3 // 2
    job_id = submit("command", {"command": f"seq 1 {total}"})
    # when it runs with Redis up the whole time
    wait_for(lambda: registry.get(job_id).state is JobState.SUCCEEDED, timeout=60, message="the job ends")
    # then every line is in its log, in order, and none is said to be dropped
    assert printed(job_id) == [str(n) for n in range(1, total + 1)]


def test_a_line_longer_than_the_log_keeps_is_cut_and_says_so(workers: Workers, registry: Registry) -> None:
    # given a command printing a 5 MB line, a line of exactly the cap, and a short one
    workers.start("command")
    cap = LOG_LINE_MAX_CHARS
    command = (
        f"head -c 5000000 /dev/zero | tr '\\0' a; echo; head -c {cap} /dev/zero | tr '\\0' b; echo; echo end"
    )
    job_id = submit("command", {"command": command})
    wait_for(lambda: registry.get(job_id).state is JobState.SUCCEEDED, timeout=60, message="the job ends")
    # then the long line keeps its first characters and says it was cut; the others are whole
    long, exact, end = printed(job_id)
    assert long == "a" * cap + f" [trainq: line cut at {cap:,} characters]"
    assert exact == "b" * cap and end == "end"
    # and the log holds kilobytes, not the megabytes printed
    assert registry.client.memory_usage(registry.keys.log(job_id)) < 10 * cap


def test_a_progress_line_reports_progress_and_stays_in_the_log(workers: Workers, registry: Registry) -> None:
    # given a command printing a progress line between two others (README, docs/monitoring.md)
    workers.start("command")
    job_id = submit("command", {"command": "echo before; echo 'trainq:progress 3/4 loss=0.5'; echo after"})
    wait_for(lambda: registry.get(job_id).state is JobState.SUCCEEDED, timeout=30, message="the job ends")
    # then the job's progress is set from it, and the line is in its log too
    progress = registry.get(job_id).progress
    assert progress is not None and (progress.step, progress.total) == (3, 4)
    assert printed(job_id) == ["before", "trainq:progress 3/4 loss=0.5", "after"]


def test_a_bar_redrawn_in_place_keeps_its_last_drawing_not_every_one(
    workers: Workers, registry: Registry
) -> None:
    # given a command drawing a progress bar 500 times over itself, a carriage return before each
    # drawing (as tqdm does), then 200 times with one after each (as wget and curl do) and a last
    # word over it, a Windows line end, and a line after it
    workers.start("command")
    bar = r'i=0; while [ $i -lt 500 ]; do i=$((i+1)); printf "\r%d/500" $i; done; printf "\n"'
    wget = r'i=0; while [ $i -lt 200 ]; do i=$((i+1)); printf "%d/200\r" $i; done; echo done'
    command = f"echo start; {bar}; {wget}; printf 'crlf\\r\\n'; echo end"
    job_id = submit("command", {"command": command})
    wait_for(lambda: registry.get(job_id).state is JobState.SUCCEEDED, timeout=30, message="the job ends")
    # then the log holds a drawing every 10 s (here the first) and each bar's last state, not 700 lines
    assert printed(job_id) == [
        "start",
        "1/500",
        "499/500",
        "500/500",
        "200/200",
        "done",
        "crlf",
        "end",
    ]


def test_a_handlers_redrawn_line_keeps_its_last_state() -> None:
    from trainq.job.context import _drawn

    assert _drawn("\r1/3\r2/3\r3/3") == ["2/3", "3/3"]
    assert _drawn("1/200\r200/200\rdone") == ["200/200", "done"]
    assert _drawn("crlf\r") == ["crlf"] and _drawn("plain") == ["plain"]


def test_a_secret_across_the_lines_cut_is_masked_whole(workers: Workers, registry: Registry) -> None:
    # given a command printing a worker's token where the log cuts a long line
    workers.start("command", env={"MY_TOKEN": "tok-5f1c9e2b7a"})
    cap = LOG_LINE_MAX_CHARS
    command = f"head -c {cap - 6} /dev/zero | tr '\\0' x; echo \" $TOKEN tail\""
    job_id = submit("command", {"command": command}, environment={"TOKEN": "${MY_TOKEN}"})
    wait_for(lambda: registry.get(job_id).state is JobState.SUCCEEDED, timeout=30, message="the job ends")
    # then the stored line holds no part of the token: it was masked before the cut
    (line,) = printed(job_id)
    assert line.startswith("x" * (cap - 6) + " ***") and "tok-" not in line, line[-60:]
