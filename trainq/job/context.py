"""What a running handler sees: its job's id and attempt, and calls to report progress and logs.

Progress and log lines go to the registry from one background thread (``Outbox``): lines wait in
a bounded buffer, retried with backoff. A writer finding it full waits while the registry takes
lines (a fast printer is slowed to the registry's pace, nothing lost); once the registry fails or
takes nothing for ``OUTBOX_WAIT_S``, the oldest lines are dropped and counted instead, so an
unreachable Redis never blocks the handler or a command's output pipe for long.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from trainq.job.environment import mask, masked
from trainq.job.record import JobRecord, Progress
from trainq.settings import get_settings
from trainq.store.registry import Registry

if TYPE_CHECKING:
    from trainq.job.task import JobTask

log = logging.getLogger("trainq.job.context")
PROGRESS_STATE = "PROGRESS"

#: Log lines held for the registry; past this a writer waits, or older ones are dropped (see above).
OUTBOX_MAX_LINES = 10_000
#: Longest a writer waits for room in a full outbox before lines are dropped until the registry answers.
OUTBOX_WAIT_S = 2.0
#: Longest log line kept: a longer one is cut there, saying so (a log's size stays bounded).
LOG_LINE_MAX_CHARS = 16_384
#: Lines sent in one round trip.
OUTBOX_BATCH_LINES = 500
#: Retry delays while the registry is unreachable: doubling from the first to the last.
OUTBOX_BACKOFF_S = (0.1, 5.0)


class Outbox(threading.Thread):
    """Sends one job's log lines and latest progress to the registry, off the handler's thread.

    ``put_lines`` and ``put_progress`` never block and never raise; a failed send is retried
    with backoff. ``close`` sends what is left, waiting at most ``timeout_s``. The thread starts
    with the first line or report, so a job that sends none costs no thread.
    """

    def __init__(self, job: Job) -> None:
        super().__init__(name=f"trainq-outbox-{job.id}", daemon=True)
        self._job = job
        self._lines: deque[str] = deque(maxlen=OUTBOX_MAX_LINES)
        self._progress: Progress | None = None
        self._dropped = 0
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        #: The registry is taking lines: a writer to a full buffer waits for room instead of dropping.
        self._flowing = True
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._idle = threading.Event()
        self._idle.set()

    def put_lines(self, lines: list[str]) -> None:
        """Queue ``lines`` (already masked) for the job log; waits for room while the registry takes lines."""
        with self._lock:
            self._wait_for_room(len(lines))
            overflow = len(self._lines) + len(lines) - OUTBOX_MAX_LINES
            if overflow > 0:
                self._dropped += overflow
            self._lines.extend(lines)
            self._pending()

    def _wait_for_room(self, count: int) -> None:
        """Wait (lock held) until ``count`` more lines fit, while the registry takes lines and for at
        most ``OUTBOX_WAIT_S``; the outbox's own thread never waits (a line it logs would wait on it)."""
        deadline = time.monotonic() + OUTBOX_WAIT_S
        while (
            len(self._lines) + count > OUTBOX_MAX_LINES
            and self._flowing
            and not self._closing.is_set()
            and threading.current_thread() is not self
        ):
            left = deadline - time.monotonic()
            if left <= 0:
                self._flowing = False  # drop from now on, until a send goes through
                return
            self._room.wait(left)

    def put_progress(self, progress: Progress) -> None:
        """Queue ``progress``, replacing any report not yet sent."""
        with self._lock:
            self._progress = progress
            self._pending()

    def _pending(self) -> None:
        """Note there is something to send (lock held); cheap when already noted, as per line."""
        if self._idle.is_set():
            self._idle.clear()
            if self.ident is None:
                self.start()
        if not self._wake.is_set():
            self._wake.set()

    def run(self) -> None:
        delay = OUTBOX_BACKOFF_S[0]
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                while self._send_some():
                    pass
            except Exception as exc:  # any failure to send is retried: the handler must never see it
                with self._lock:
                    self._flowing = False
                    self._room.notify_all()
                if delay == OUTBOX_BACKOFF_S[0]:  # once per outage, not once per retry
                    log.warning("job %s: registry unreachable (%s); holding its log", self._job.id, exc)
                if self._closing.wait(delay):
                    return
                delay = min(delay * 2, OUTBOX_BACKOFF_S[1])
                self._wake.set()
                continue
            delay = OUTBOX_BACKOFF_S[0]
            if self._closing.is_set():
                return

    def _send_some(self) -> bool:
        """Send one batch; True if there was one. Raises what the send raised after putting it back."""
        with self._lock:
            batch = [self._lines.popleft() for _ in range(min(len(self._lines), OUTBOX_BATCH_LINES))]
            if batch:
                self._room.notify_all()
            progress, self._progress = self._progress, None
            dropped, self._dropped = self._dropped, 0
            if not batch and progress is None and not dropped:
                self._idle.set()
                return False
        try:
            if dropped:
                note = f"[trainq] {dropped} log lines dropped while the registry was unreachable"
                self._job.registry.append_log(self._job.id, [note, *batch])
            elif batch:
                self._job.registry.append_log(self._job.id, batch)
        except Exception:
            self._put_back(batch, dropped, progress)
            raise
        with self._lock:
            self._flowing = True
        if progress is not None:
            try:
                self._job.send_progress(progress)
            except Exception:
                self._put_back([], 0, progress)
                raise
        return True

    def _put_back(self, batch: list[str], dropped: int, progress: Progress | None) -> None:
        """Return an unsent batch to the front of the buffer, counting what no longer fits."""
        with self._lock:
            room = OUTBOX_MAX_LINES - len(self._lines)
            kept = batch[max(len(batch) - room, 0) :]
            self._dropped += dropped + len(batch) - len(kept)
            self._lines.extendleft(reversed(kept))
            if self._progress is None:
                self._progress = progress

    def close(self, timeout_s: float) -> None:
        """Send what is waiting (at most ``timeout_s``), then stop; what is still held is dropped."""
        self._idle.wait(timeout_s)
        self._closing.set()
        self._wake.set()
        with self._lock:
            self._room.notify_all()
        if self.ident is not None:
            self.join(timeout_s)
        with self._lock:
            left = len(self._lines) + self._dropped
        if left:
            log.warning("job %s: %d log lines never reached the registry", self._job.id, left)


class Job:
    """A handler's view of its job: ``job.progress(3, 10, loss=0.2)``, ``job.log("...")``."""

    def __init__(
        self,
        record: JobRecord,
        registry: Registry,
        task: JobTask,
        home: Path,
        secrets: list[str] | None = None,
    ) -> None:
        self.record = record
        self.registry = registry
        self.task = task
        self.secrets = secrets or []
        self.outcome_fields: dict[str, Any] = {}  # written with the attempt's outcome (``record_fields``)
        self._home = home
        self._outbox: Outbox | None = None  # made with the first line or report: most jobs send none
        self._outbox_made = threading.Lock()

    @property
    def id(self) -> str:
        """The job id (also the Celery task id)."""
        return self.record.id

    @property
    def attempt(self) -> int:
        """This attempt's number, 1 for the first run; a handler resumes when it is above 1."""
        return self.record.attempt

    @property
    def parent_result(self) -> Any:
        """The result of the job whose success sent this one by canvas (a chord: a list), else None."""
        return self.record.parent_result

    @property
    def checkpoint_dir(self) -> Path:
        """A directory kept across attempts of this job, for checkpoints keyed by job id."""
        path = self._home / "checkpoints" / self.id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def progress(self, step: float, total: float | None = None, **metrics: Any) -> None:
        """Report progress: ``step`` of ``total`` plus free metrics (loss, acc, ...).

        Updates the registry record and the Celery task state (``PROGRESS``, seen in Flower);
        secrets in metric names and values are masked as in the log.
        """
        percent = 100.0 * step / total if total else 0.0
        metrics = masked(metrics, self.secrets)  # a metric may echo a ``${VAR}`` secret, as a log line may
        progress = Progress(step=step, total=total, percent=round(percent, 2), metrics=metrics)
        self._out().put_progress(progress)  # sent by the outbox thread; the latest report wins

    def send_progress(self, progress: Progress) -> None:
        """Write ``progress`` to Celery's result and the registry now (the outbox thread); raises
        when the registry cannot take it. Celery's copy goes first, so whoever sees the registry's
        report finds Celery's too."""
        try:
            self.task.update_state(
                task_id=self.id, state=PROGRESS_STATE, meta=progress.model_dump(mode="json")
            )
        except Exception:  # Celery's copy is for monitors; the registry has the report
            log.debug("could not update the task state of %s", self.id, exc_info=True)
        self.registry.update_running(
            self.id, self.record.fence, fields={"progress": progress.model_dump(mode="json")}
        )

    def log(self, message: str) -> None:
        """Append ``message`` (one or more lines) to the job's log, secrets masked."""
        self.log_lines(message.splitlines() or [""])

    def log_lines(self, lines: list[str]) -> None:
        """Append ``lines`` to the job's log, secrets masked and each cut at ``LOG_LINE_MAX_CHARS``
        (sent by the outbox thread)."""
        self._out().put_lines([_cut(mask(line, self.secrets)) for line in lines])

    def close(self, timeout_s: float) -> None:
        """Send the log lines and progress still waiting, for at most ``timeout_s``."""
        if self._outbox is not None:
            self._outbox.close(timeout_s)

    def _out(self) -> Outbox:
        """The job's outbox, made once whichever thread logs first."""
        with self._outbox_made:
            if self._outbox is None:
                self._outbox = Outbox(self)
            return self._outbox

    def record_fields(self, **fields: Any) -> None:
        """Set extra record fields (e.g. ``exit_code``), written with this attempt's outcome: in one
        write with it, which a registry hiccup cannot turn into a failure of the work."""
        self.outcome_fields.update(fields)


def _cut(line: str) -> str:
    """``line``, or its first ``LOG_LINE_MAX_CHARS`` characters and a note saying it was cut."""
    if len(line) <= LOG_LINE_MAX_CHARS:
        return line
    return f"{line[:LOG_LINE_MAX_CHARS]} [trainq: line cut at {LOG_LINE_MAX_CHARS:,} characters]"


class _LineWriter(io.TextIOBase):
    """A text stream that sends each complete line to the job log and passes it through.

    Whole lines pass through, secrets masked, so the worker's own log never shows them either. A
    line redrawn in place (a progress bar's carriage returns) keeps its last two drawings (``_drawn``).
    """

    def __init__(self, job: Job, passthrough: TextIO) -> None:
        self._job = job
        self._passthrough = passthrough
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        if "\n" in self._buffer:
            *whole, self._buffer = self._buffer.split("\n")
            lines = [drawing for line in whole for drawing in _drawn(line)]
            self._passthrough.write("".join(f"{mask(line, self._job.secrets)}\n" for line in lines))
            self._job.log_lines(lines)
        if "\r" in self._buffer:  # what was drawn over is not kept: the buffer stays small
            self._buffer = "\r".join(_drawn(self._buffer)) + ("\r" if self._buffer.endswith("\r") else "")
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            lines = _drawn(self._buffer)
            self._passthrough.write("\n".join(mask(line, self._job.secrets) for line in lines))
            self._job.log_lines(lines)
            self._buffer = ""
        self._passthrough.flush()


def _drawn(line: str) -> list[str]:
    """What the log keeps of a line carriage returns part into drawings (a progress bar redrawn in
    place): its last drawing and the one before it (the bar's last state, where a last word such as
    ``done`` was drawn over it); the line itself if it has no carriage return."""
    if "\r" not in line:
        return [line]
    return [drawing for drawing in line.split("\r") if drawing][-2:] or [""]


class _LogHandler(logging.Handler):
    """Sends the log records emitted while jobs run in this process to those jobs' logs.

    One per process, added to the root logger once (``_log_handler``): adding and removing a handler
    per job cost more than the job's own start on a short job.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.jobs: list[Job] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        jobs = tuple(self.jobs)
        if not jobs or record.name.startswith(("celery", "kombu", "amqp", "trainq.job.context")):
            return
        line = f"{time.strftime('%H:%M:%S')} {self.format(record)}"
        for job in jobs:
            try:
                job.log(line)
            except Exception:  # a log line must never fail the job
                log.debug("could not store log line", exc_info=True)


_log_handlers: dict[int, _LogHandler] = {}
_log_handlers_lock = threading.Lock()


def _log_handler(root: logging.Logger) -> _LogHandler:
    """This process's job log handler, added to ``root`` on first use (a forked child adds its own)."""
    with _log_handlers_lock:
        handler = _log_handlers.get(os.getpid())
        if handler is None:
            for inherited in _log_handlers.values():
                root.removeHandler(inherited)  # the parent's: its jobs are not this process's
            handler = _log_handlers[os.getpid()] = _LogHandler()
            root.addHandler(handler)
        return handler


class _MaskSecrets(logging.Filter):
    """Masks the job's secrets in every record the worker's own log handlers write."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        shown = mask(message, self._secrets)
        if shown != message:
            record.msg, record.args = shown, None
        return True


def _let_info_through(root: logging.Logger) -> None:
    """Lower ``root`` to INFO once per process, so a job's INFO records reach its log, and give
    the root's handlers its former level, so the worker's own log keeps to the worker's level.

    Once, not per job: each ``setLevel`` clears every logger's level cache (per job, ~12 µs with
    100 loggers, ~80 µs with 1,000).
    """
    level = root.level
    if level > logging.INFO:
        for other in root.handlers:
            if not isinstance(other, _LogHandler):  # jobs' logs keep INFO
                other.setLevel(max(other.level, level))
        root.setLevel(logging.INFO)


@contextmanager
def capture_output(job: Job) -> Iterator[None]:
    """Route handler logging and stdout/stderr into the job log while the block runs."""
    root = logging.getLogger()
    _let_info_through(root)
    handler = _log_handler(root)
    others = list(root.handlers) if job.secrets else []  # the job log handler too: other jobs' lines
    masking = _MaskSecrets(job.secrets)
    for other in others:
        other.addFilter(masking)
    handler.jobs.append(job)
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _LineWriter(job, out), _LineWriter(job, err)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        # Past the lease, a registry that still cannot be reached leaves the job to recovery.
        job.close(get_settings().lease_s)
        sys.stdout, sys.stderr = out, err
        handler.jobs.remove(job)
        for other in others:
            other.removeFilter(masking)
