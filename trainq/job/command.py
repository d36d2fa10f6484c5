"""The ``command`` job type: a shell command in its own process group, its output streamed.

Each stdout/stderr line goes to the job log as it is printed. A line of the form
``trainq:progress STEP/TOTAL [key=value ...]`` also reports progress (and stays in the log). A
non-zero exit fails the attempt (and may retry); a timeout or cancel kills the whole process group
(by its id, so also when its guard was killed alone) and what left it, and so does the group's guard
(``trainq.job.guard``) when the pool process running the job dies.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

from celery.result import AsyncResult
from pydantic import BaseModel, Field

from trainq.errors import CommandFailed, CommandRefused
from trainq.inputs.text import OsText
from trainq.job import clients, guard
from trainq.job.context import LOG_LINE_MAX_CHARS, Job
from trainq.job.task import JobTask
from trainq.job.types import job_type
from trainq.settings import get_settings

log = logging.getLogger("trainq.command")
PROGRESS_LINE = re.compile(r"^trainq:progress\s+(\d+(?:\.\d+)?)(?:/(\d+(?:\.\d+)?))?\s*(.*)$")

KILL_GRACE_S = 5.0
#: How often ``kill_group`` looks whether the guard has exited within its grace.
EXIT_POLL_S = 0.05
#: How much of a line is read before the rest is skipped: the log's cut and room for a secret across it.
READ_MAX_CHARS = LOG_LINE_MAX_CHARS + 1024
#: How often a line redrawn in place (ended by a carriage return) is kept in the log.
REDRAWN_EVERY_S = 10.0


class CommandConfig(BaseModel):
    """A shell command, and the directory it runs in (default: the worker's)."""

    command: OsText = Field(min_length=1)
    cwd: OsText | None = None


class CommandResult(BaseModel):
    """How the command ended."""

    exit_code: int


def parse_progress(line: str) -> tuple[float, float | None, dict[str, Any]] | None:
    """``(step, total, metrics)`` from a ``trainq:progress`` line, else None."""
    match = PROGRESS_LINE.match(line.strip())
    if not match:
        return None
    metrics: dict[str, Any] = {}
    for pair in match.group(3).split():
        key, _, value = pair.partition("=")
        try:
            metrics[key] = float(value)
        except ValueError:
            metrics[key] = value
    total = float(match.group(2)) if match.group(2) else None
    return float(match.group(1)), total, metrics


class CommandTask(JobTask):
    """The command type's task: refused inside Flower unless enabled (see ``clients.flower_refusal``)."""

    def apply_async(
        self, args: Any = None, kwargs: Any = None, task_id: str | None = None, **options: Any
    ) -> AsyncResult:
        """Send as ``JobTask`` does, after refusing a send from Flower's task API."""
        refusal = clients.flower_refusal()
        if refusal:
            raise CommandRefused(refusal)
        return super().apply_async(args, kwargs, task_id=task_id, **options)

    def client_refusal(self) -> str | None:
        """A shell command sent by a client without trainq (``send_task``, Flower's send-task) runs
        only where ``TRAINQ_CLIENT_COMMANDS`` allows it: broker access alone must not mean a shell."""
        if get_settings().client_commands:
            return None
        return (
            "command jobs from Celery clients without trainq (send_task, Flower's send-task) are refused; "
            "set TRAINQ_CLIENT_COMMANDS=true on the command workers to allow them"
        )


@job_type("command", input=CommandConfig, output=CommandResult, queue="command", base=CommandTask)
def run_command(job: Job, config: CommandConfig) -> CommandResult:
    """Run ``config.command`` with ``sh -c`` under its guard; stream its output; fail on a non-zero exit."""
    life, held = os.pipe()  # the guard watches ``life``; only this process holds ``held``
    try:
        process = _start(job, config, life)
        reader = threading.Thread(target=_stream, args=(job, process), daemon=True)
        reader.start()
        try:
            _exited(process)
            reader.join()  # the output ends once every process holding it has: an orphaned shell too
        except BaseException:  # a cancel or timeout: the group goes, whether its guard runs or not
            kill_group(process)
            raise
        code = process.wait()
    finally:
        os.close(held)
    job.record_fields(exit_code=code)
    if code != 0:
        raise CommandFailed(code)
    return CommandResult(exit_code=code)


def _start(job: Job, config: CommandConfig, life: int) -> subprocess.Popen[bytes]:
    """Start the command's guard, in a session of its own, watching pipe end ``life`` (closed here)."""
    pid_file = guard.pid_file(get_settings().home, job.id, job.record.fence)
    try:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            guard.command(life, pid_file, config.command),
            cwd=config.cwd or job.record.options.get("cwd") or None,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(life,),
        )
    finally:
        os.close(life)


def _stream(job: Job, process: subprocess.Popen[bytes]) -> None:
    """Read the command's output to its end, whatever happens to a line: a pipe left full would
    block the command for good."""
    assert process.stdout is not None
    # bytes that are not text must not stop the reading; a carriage return ends a line too (newline="")
    output = io.TextIOWrapper(process.stdout, encoding="utf-8", errors="replace", newline="")
    for line in _lines(output):
        try:
            _report(job, line)
        except Exception:
            log.exception("job %s: could not report an output line; reading on", job.id)


def _lines(stream: IO[str]) -> Iterator[str]:
    """The stream's lines; one longer than the log keeps comes as its first ``READ_MAX_CHARS`` characters
    (cut by ``Job.log`` once its secrets are masked: one across the cut is masked whole) and its rest is
    skipped, so a line without end never fills memory.

    A line a lone carriage return ends is drawn over by the next (a progress bar redrawn in place):
    one in ``REDRAWN_EVERY_S`` is kept, so a long bar shows in the log without flooding it, and the
    last drawing before the next line (or the end), so the log ends with the bar's last state.
    """
    redrawn_at, drawn = -REDRAWN_EVERY_S, None  # ``drawn``: the latest drawing not kept yet
    while line := stream.readline(READ_MAX_CHARS):
        if line.endswith("\r"):
            if line.strip():
                drawn = line.removesuffix("\r")
            if drawn is not None and time.monotonic() - redrawn_at >= REDRAWN_EVERY_S:
                redrawn_at = time.monotonic()
                yield drawn
                drawn = None
            continue
        if drawn is not None:
            yield drawn
            drawn = None
        if len(line) < READ_MAX_CHARS or line.endswith("\n"):
            yield line.removesuffix("\n").removesuffix("\r")
            continue
        yield line
        while (rest := stream.readline(LOG_LINE_MAX_CHARS)) and not rest.endswith(("\n", "\r")):
            pass
    if drawn is not None:
        yield drawn


def _report(job: Job, line: str) -> None:
    progress = parse_progress(line)
    if progress:
        step, total, metrics = progress
        job.progress(step, total, **metrics)
    job.log(line)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the command's process group, then SIGKILL what is left if its guard lingers; reap the
    guard last.

    The guard forwards the SIGTERM to the processes that left the group and runs until all the command
    started has ended, so the SIGKILL (``guard.kill``: the guard's descendants, then the group) reaches
    those too. The group is signalled by its id (the guard's pid), not through the guard, so a guard
    killed on its own leaves no shell behind; until reaped, the guard's pid names no other process.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    _exited(process, KILL_GRACE_S)
    guard.kill(process.pid)
    process.wait()


def _exited(process: subprocess.Popen[bytes], timeout_s: float | None = None) -> None:
    """Wait until the guard has exited (or ``timeout_s`` passed), leaving it unreaped: its pid keeps
    naming the command's group."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    flags = os.WEXITED | os.WNOWAIT | (0 if deadline is None else os.WNOHANG)
    try:
        while os.waitid(os.P_PID, process.pid, flags) is None:
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(EXIT_POLL_S)
    except ChildProcessError:
        return  # reaped already
