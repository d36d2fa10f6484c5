"""What a running handler sees: its job's id and attempt, and calls to report progress and logs."""

from __future__ import annotations

import io
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from trainq.environment import mask, masked
from trainq.jobs import JobRecord, JobState, Progress
from trainq.registry import Registry

if TYPE_CHECKING:
    from trainq.task import JobTask

log = logging.getLogger("trainq.context")
PROGRESS_STATE = "PROGRESS"


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
        self._home = home

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
        self.registry.transition(
            self.id,
            JobState.RUNNING,
            allowed={JobState.RUNNING},
            fence=self.record.fence,
            fields={"progress": progress.model_dump(mode="json")},
        )
        self.task.update_state(task_id=self.id, state=PROGRESS_STATE, meta=progress.model_dump(mode="json"))

    def log(self, message: str) -> None:
        """Append ``message`` (one or more lines) to the job's log, secrets masked."""
        self.log_lines(message.splitlines() or [""])

    def log_lines(self, lines: list[str]) -> None:
        """Append ``lines`` to the job's log, secrets masked."""
        self.registry.append_log(self.id, [mask(line, self.secrets) for line in lines])

    def record_fields(self, **fields: Any) -> None:
        """Set extra record fields (e.g. ``exit_code``) while this attempt still holds the job."""
        self.registry.transition(
            self.id, JobState.RUNNING, allowed={JobState.RUNNING}, fence=self.record.fence, fields=fields
        )


class _LineWriter(io.TextIOBase):
    """A text stream that sends each complete line to the job log and passes it through.

    Whole lines pass through, secrets masked, so the worker's own log never shows them either.
    """

    def __init__(self, job: Job, passthrough: TextIO) -> None:
        self._job = job
        self._passthrough = passthrough
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        if "\n" in self._buffer:
            *lines, self._buffer = self._buffer.split("\n")
            self._passthrough.write("".join(f"{mask(line, self._job.secrets)}\n" for line in lines))
            self._job.log_lines(lines)
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            self._passthrough.write(mask(self._buffer, self._job.secrets))
            self._job.log_lines([self._buffer])
            self._buffer = ""
        self._passthrough.flush()


class _LogHandler(logging.Handler):
    """Sends log records emitted while the job runs to the job log."""

    def __init__(self, job: Job) -> None:
        super().__init__(logging.INFO)
        self._job = job
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("celery", "kombu", "amqp", "trainq.context")):
            return
        try:
            self._job.log(f"{time.strftime('%H:%M:%S')} {self.format(record)}")
        except Exception:  # a log line must never fail the job
            log.debug("could not store log line", exc_info=True)


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


@contextmanager
def capture_output(job: Job) -> Iterator[None]:
    """Route handler logging and stdout/stderr into the job log while the block runs."""
    handler = _LogHandler(job)
    root = logging.getLogger()
    old_level = root.level
    masking = _MaskSecrets(job.secrets)
    others = list(root.handlers) if job.secrets else []
    for other in others:
        other.addFilter(masking)
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _LineWriter(job, out), _LineWriter(job, err)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = out, err
        root.removeHandler(handler)
        root.setLevel(old_level)
        for other in others:
            other.removeFilter(masking)
