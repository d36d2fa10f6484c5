"""Every error trainq raises, in one tree.

TrainqError
├── ConfigError              bad setting or unusable environment
│   └── InvalidSetting       a TRAINQ_* variable that does not parse (exit code 2)
├── BrokerUnavailable        broker or registry cannot be reached
│   ├── OutcomeUnknown       the registry did not answer a new job's write in time: it may be stored
│   └── BrokerRefused        the broker refused a job: a queue it will not declare, a message it nacks
├── JobFailed                a job's error as Celery stores it, secrets masked
├── SubmitRefused            a key's ``supersede: refuse`` refused a new job: recorded cancelled, never run
├── InvalidInput             bad input from a caller (exit code 2)
│   ├── PayloadError         a payload failed its job type's model
│   ├── UnknownJobType       no job type of that name
│   ├── InvalidName          a queue or job type name breaks the naming rule
│   ├── DurationError        a timeout / delay string that does not parse
│   ├── JobNotFound          no job with that id
│   ├── KeyInUse             an idempotency key already names a job of another job type
│   ├── RunNotFound          no pipeline run with that id
│   ├── InvalidTransition    the job's state does not allow the operation
│   ├── PipelineError        a pipeline file or DAG is invalid
│   ├── DocumentError        a JSON/YAML document is unreadable, malformed or past a limit
│   ├── ScheduleError        a schedule definition is invalid, or no schedule has that name
│   ├── UnknownQueryParameter  an HTTP request names a query parameter its route does not declare
│   └── CommandRefused       a shell command job sent over HTTP where that is not enabled
├── ResultFilesMissing       a required ``result_files`` entry matched nothing
├── CommandFailed            a ``command`` job's process exited non-zero (retried by policy)
└── PermanentError           raised by a handler: fail now, never retry
    ├── UnsetVariable        a job's environment names a variable its worker does not set
    └── ResultFilesUncollected  a required ``result_files`` match could not be copied

JobStopped (a BaseException, so a handler's ``except Exception`` cannot swallow a cancel or shutdown)
"""

from __future__ import annotations

#: What Redis says when it refuses a write for want of memory (``maxmemory`` with ``noeviction``).
_OUT_OF_MEMORY = "> 'maxmemory'"
_NO_JOB = "no job with id "
_NO_RUN = "no pipeline run or pipeline id "


class TrainqError(Exception):
    """Raised for any trainq failure; the root of the tree above.

    ``args`` is always ``(message,)``: Celery stores a job's error as its args and rebuilds it as
    ``cls(*args)`` (a client without trainq shows them as they are). So a class that builds its
    message from fields also takes the finished message alone, as Celery gives it back; its fields
    are then None, its list of problems that message.
    """


class ConfigError(TrainqError):
    """Raised when a setting is invalid or the embedded broker cannot start."""


class InvalidSetting(ConfigError):
    """Raised when a ``TRAINQ_*`` variable does not parse or is out of range, naming it."""


class BrokerUnavailable(TrainqError):
    """Raised when the broker or the registry does not answer; ``url`` names it (password masked)."""

    url: str | None = None
    role: str | None = None

    def __init__(self, url: str, reason: str | None = None, role: str = "broker") -> None:
        from trainq.settings import redacted  # here: settings imports (via durations) this module

        if reason is None:  # rebuilt by Celery: ``url`` is the message
            super().__init__(url)
            return
        self.url, self.role = redacted(url), role
        super().__init__(self._describe(redacted(reason).rstrip("."), role))

    def _describe(self, reason: str, role: str) -> str:
        if _OUT_OF_MEMORY in reason:
            return (
                f"the {role} at {self.url} is out of memory ({reason}): nothing was written; free memory "
                "or raise its maxmemory"
            )
        return (
            f"cannot reach the {role} at {self.url}: {reason}. Start it, or point "
            f"TRAINQ_{role.upper()}_URL at a running server."
        )


class OutcomeUnknown(BrokerUnavailable):
    """Raised when the registry did not answer a new job's write in time, after it was sent: the server
    may store and send the job all the same once it answers again. ``job_id`` names the job to check
    before sending it again."""

    job_id: str | None = None

    def __init__(self, url: str, reason: str | None = None, role: str = "registry", job_id: str = "") -> None:
        self.job_id = job_id or None
        super().__init__(url, reason, role)

    def _describe(self, reason: str, role: str) -> str:
        return (
            f"the {role} at {self.url} did not answer in time ({reason}): job {self.job_id} may be stored "
            f"and sent all the same; check `trainq show {self.job_id}` before sending it again (a job "
            "submitted with an idempotency key, --key, is never stored twice)"
        )


class BrokerRefused(BrokerUnavailable):
    """Raised when the broker answers but refuses a job: a queue it will not declare (one of that name
    exists with other arguments, or access is denied) or a message it does not confirm (a nack).
    Like an unreachable broker, nothing of the job is stored."""

    def _describe(self, reason: str, role: str) -> str:
        return f"the broker at {self.url} refused the job: {reason}"


class JobFailed(TrainqError):
    """Raised to Celery instead of a handler's exception whose message held a secret (masked here)."""


class SubmitRefused(TrainqError):
    """Raised when a new job's concurrency key refused it (``supersede: refuse`` while an older job of
    the key waits or runs): ``job_id`` is recorded cancelled and never runs. Not bad input: exit code 1."""

    job_id: str | None = None

    def __init__(self, job_id: str, reason: str | None = None) -> None:
        if reason is None:  # rebuilt by Celery: ``job_id`` is the message
            super().__init__(job_id)
            return
        self.job_id = job_id
        super().__init__(f"job {job_id} was not started: {reason}")


class InvalidInput(TrainqError):
    """Raised when a caller's input is wrong; nothing was enqueued."""


class PayloadError(InvalidInput):
    """Raised when a payload fails its job type's pydantic model; names each bad field."""

    job_type: str | None = None

    def __init__(self, job_type: str, errors: list[str] | None = None) -> None:
        if errors is None:  # rebuilt by Celery: ``job_type`` is the message
            self.errors = [job_type]
            super().__init__(job_type)
            return
        self.job_type, self.errors = job_type, errors
        super().__init__(f"invalid payload for job type {job_type!r}: " + "; ".join(errors))


class UnknownJobType(InvalidInput):
    """Raised when a job type name is not registered."""

    name: str | None = None

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        if known is None:  # rebuilt by Celery: ``name`` is the message
            super().__init__(name)
            return
        self.name = name
        super().__init__(f"unknown job type {name!r}; known types: {', '.join(sorted(known))}")


class InvalidName(InvalidInput):
    """Raised when a queue or job type name breaks the naming rule (``trainq.broker.names``)."""

    def __init__(self, what: str, name: str | None = None, problem: str | None = None) -> None:
        self.name = name
        if name is None:  # rebuilt by Celery: ``what`` is the message
            super().__init__(what)
            return
        super().__init__(f"invalid {what} name {name!r}: {problem}")


class DurationError(InvalidInput):
    """Raised when a duration such as ``1h 30m`` does not parse."""


class JobNotFound(InvalidInput):
    """Raised when no job record has the given id."""

    job_id: str | None = None

    def __init__(self, job_id: str) -> None:
        if job_id.startswith(_NO_JOB):  # rebuilt by Celery from the message (no job id has a space)
            super().__init__(job_id)
            return
        self.job_id = job_id
        super().__init__(f"{_NO_JOB}{job_id!r}")


class KeyInUse(InvalidInput):
    """Raised when an idempotency key already names a job of another job type; nothing is enqueued."""

    key: str | None = None
    job_type: str | None = None
    job_id: str | None = None

    def __init__(self, key: str, job_type: str | None = None, job_id: str | None = None) -> None:
        if job_type is None:  # rebuilt by Celery: ``key`` is the message
            super().__init__(key)
            return
        self.key, self.job_type, self.job_id = key, job_type, job_id
        super().__init__(
            f"idempotency key {key!r} is already held by job {job_id} of job type {job_type!r}; "
            "use another key for this job type"
        )


class RunNotFound(InvalidInput):
    """Raised when no pipeline run has the given id (nor, where accepted, a pipeline of that id)."""

    run_id: str | None = None

    def __init__(self, run_id: str) -> None:
        if run_id.startswith(_NO_RUN):  # rebuilt by Celery from the message
            super().__init__(run_id)
            return
        self.run_id = run_id
        super().__init__(f"{_NO_RUN}{run_id!r} (see trainq pipeline list)")


class InvalidTransition(InvalidInput):
    """Raised when a job's state does not allow the requested operation."""


class PipelineError(InvalidInput):
    """Raised when a pipeline is invalid; ``problems`` lists each one with its job id."""

    def __init__(self, problems: list[str] | str) -> None:
        if isinstance(problems, str):  # rebuilt by Celery from the message
            self.problems = [problems]
            super().__init__(problems)
            return
        self.problems = problems
        super().__init__("invalid pipeline:\n  " + "\n  ".join(problems))


class UnknownQueryParameter(InvalidInput):
    """Raised when a request's query names parameters its route does not declare; ``problems`` names each."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else problems
        super().__init__("; ".join(self.problems))


class DocumentError(InvalidInput):
    """Raised when a JSON or YAML document cannot be read, does not parse, or passes a limit."""


class ScheduleError(InvalidInput):
    """Raised when a schedule is invalid or missing; the message starts with its name."""

    name: str | None = None

    def __init__(self, name: str, problem: str | None = None) -> None:
        if problem is None:  # rebuilt by Celery: ``name`` is the message
            super().__init__(name)
            return
        self.name = name
        super().__init__(f"schedule {name!r}: {problem}")


class CommandRefused(InvalidInput):
    """Raised when a shell ``command`` job comes over HTTP (trainq web, Flower) and that is not enabled."""


class ResultFilesMissing(TrainqError):
    """Raised after a job's work when a ``required`` result file matched nothing; the attempt fails."""


class PermanentError(TrainqError):
    """Raised by a handler for a failure that retrying cannot fix; the job fails at once."""


class ResultFilesUncollected(PermanentError):
    """Raised after a job's work when a ``required`` result file matched but could not be copied (a
    dangling symlink, one leading out of the working directory, a read error); running the work
    again cannot fix that, so the job fails at once."""


class UnsetVariable(PermanentError):
    """Raised on a worker when a job's ``environment`` references a variable it does not set."""

    variable: str | None = None

    def __init__(self, variable: str, name: str | None = None, worker: str | None = None) -> None:
        if name is None:  # rebuilt by Celery: ``variable`` is the message
            super().__init__(variable)
            return
        self.variable = variable
        super().__init__(
            f"environment {name}: ${{{variable}}} is not set on worker {worker} "
            f"(set it there, or give a default: ${{{variable}:-value}})"
        )


class CommandFailed(TrainqError):
    """Raised when a ``command`` job's process exits with a non-zero code."""

    def __init__(self, exit_code: int | str) -> None:
        message = exit_code if isinstance(exit_code, str) else f"command exited with code {exit_code}"
        self.exit_code = int(message.rpartition(" ")[2])  # a rebuilt error's too: Celery gives the message
        super().__init__(message)


class JobStopped(BaseException):
    """Raised inside a handler when its process is told to stop (cancel or shutdown)."""
