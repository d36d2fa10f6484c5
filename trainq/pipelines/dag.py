"""The pipeline definition: the file format, its validation, and the job graph.

``plan`` checks a pipeline mapping (from JSON, YAML or the ``Pipeline`` builder) without
any network work and reports every problem at once, each with its job id: bad fields,
duplicate ids, unknown dependencies, dependency cycles (``a -> b -> a``), bad timeouts,
unknown job types and configs that fail their type's model. Files are read by
``trainq.inputs.documents`` (bounded size, depth and numbers) and every check here is linear in the
file, so no file can make validation slow. ``Dag`` answers the graph questions execution and
display need (order, dependants, the picture).
"""

from __future__ import annotations

import difflib
import heapq
import itertools
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from trainq.broker.names import QueueName
from trainq.errors import DurationError, InvalidInput, PipelineError
from trainq.inputs import documents
from trainq.inputs.documents import brief
from trainq.inputs.durations import parse_duration
from trainq.inputs.limits import (
    MAX_DOCUMENT_BYTES,
    MAX_ENV_NAME_CHARS,
    MAX_PIPELINE_JOBS,
    MAX_REPORTED_PROBLEMS,
    MAX_RETRIES,
    MAX_SUGGESTION_CANDIDATES,
    MAX_SUGGESTIONS,
    PIPELINE_ID_MAX_CHARS,
)
from trainq.inputs.problems import not_a_string, read_as, validated, validator_words
from trainq.inputs.text import OsText
from trainq.job.artifacts import pattern_problem
from trainq.job.environment import NAME as ENV_NAME
from trainq.job.environment import NAME_RULE as ENV_RULE
from trainq.job.limit import rendered
from trainq.job.types import job_types

#: Pipeline and job ids appear in Redis keys, job ids and artifact paths (always ``fullmatch``).
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
ID_RULE = "use letters, digits, '_', '-' or '.', starting with a letter or digit"
#: Top-level names of the pipeline id; ``queue_id`` is the batch-queue files' name for it.
PIPELINE_ID_FIELDS = ("pipeline_id", "queue_id")
#: The file name meaning standard input (``trainq pipeline run -``), and how messages name it.
STDIN, STDIN_NAME = "-", "stdin"


def _string(value: Any) -> Any:
    """``value`` if it is a string, else what YAML read it as (``no`` as false, ``007`` as 7)."""
    if problem := not_a_string(value):
        raise ValueError(problem)
    return value


def _environment_name(name: str) -> str:
    """``name`` if it is a POSIX variable name (``A=B`` would break the job at run time)."""
    if len(name) > MAX_ENV_NAME_CHARS or not ENV_NAME.fullmatch(name):
        raise ValueError(f"environment name {brief(name)} is invalid: {ENV_RULE}")
    return name


def _duration(value: Any) -> Any:
    """``value`` if it is a duration (``1h 30m``, or seconds); a wrong type is one problem, not one per
    type pydantic tried."""
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a duration such as '1h' or a number of seconds, got {read_as(value)}")
    try:
        parse_duration(value, positive=True)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    return value


#: A string of the file: one YAML would read as another type is refused saying what it was read as.
Text = Annotated[str, BeforeValidator(_string)]
#: A string of the file that reaches the OS (a command, a variable's value).
TextForOs = Annotated[OsText, BeforeValidator(_string)]


class ResultFile(BaseModel):
    """A ``result_files`` entry in its long form: a glob and whether the job fails without a match."""

    model_config = ConfigDict(extra="forbid")

    path: Text
    required: bool = False


def _result_file(entry: Any) -> Any:
    """A ``result_files`` entry in its long form (a glob alone is one not required)."""
    if isinstance(entry, str):
        return {"path": entry}
    if isinstance(entry, (dict, ResultFile)):
        return entry
    raise ValueError(f"expected a glob or a mapping with path and required, got {read_as(entry)}")


class JobSpec(BaseModel):
    """One job of a pipeline file: a shell ``command`` or a job ``type`` with its ``config``.

    Each field is checked here, not after, so a file's problems are all listed at once.
    """

    model_config = ConfigDict(extra="forbid")

    job_id: Text
    command: TextForOs | None = None
    type: Text | None = None
    config: dict[str, Any] | None = None
    depends_on: list[Text] = Field(default_factory=list)
    retry_count: int | None = Field(default=None, ge=0, le=MAX_RETRIES)
    timeout: Annotated[str | float | None, BeforeValidator(_duration)] = None
    environment: dict[Annotated[str, AfterValidator(_environment_name)], TextForOs] = Field(
        default_factory=dict
    )
    result_files: list[Annotated[ResultFile, BeforeValidator(_result_file)]] = Field(default_factory=list)
    queue: QueueName | None = None
    priority: int | None = Field(default=None, ge=0, le=9)
    limit: dict[str, Any] | None = None

    @field_validator("result_files")
    @classmethod
    def _result_files(cls, entries: list[ResultFile]) -> list[ResultFile]:
        problems = [pattern_problem(entry.path) for entry in entries]
        if any(problems):
            raise ValueError("; ".join(p for p in problems if p))
        return entries


@dataclass
class PlannedJob:
    """A validated job: its job type, message payload, submit options and dependencies."""

    job_id: str
    type: str
    payload: dict[str, Any]
    options: dict[str, Any]
    depends_on: list[str]


def load(path: str | Path) -> Any:
    """The mapping in a JSON (``.json``) or YAML file, or on standard input for ``-`` (read as YAML,
    which reads JSON too); raises DocumentError if it cannot be read."""
    if str(path) == STDIN:
        raw = documents.read_stream(sys.stdin.fileno(), STDIN_NAME, MAX_DOCUMENT_BYTES)
        return documents.parse(raw, STDIN_NAME, "yaml", MAX_DOCUMENT_BYTES)
    return documents.read_file(Path(path), "pipeline file", MAX_DOCUMENT_BYTES)


def plan(data: Any, base_dir: Path, tags: Mapping[str, str] | None = None) -> tuple[str, list[PlannedJob]]:
    """The pipeline id and every job ready to submit; raises PipelineError listing all problems.

    A ``command`` job becomes a ``command`` job running in ``base_dir``; every job is tagged
    ``pipeline=<id>`` and with ``tags`` (a schedule's run: ``schedule=<name>``).
    """
    pipeline_id, jobs, problems = parse(data)
    types = job_types()
    planned = []
    for job in jobs:
        try:
            planned.append(_plan_job(pipeline_id, job, types, str(base_dir), tags or {}))
        except InvalidInput as exc:
            problems.append(f"job {job.job_id!r}: {exc}")
    if problems:
        raise PipelineError(_reported(problems))
    return pipeline_id, planned


def _reported(problems: list[str]) -> list[str]:
    """The first ``MAX_REPORTED_PROBLEMS`` problems, and a count of the rest."""
    if len(problems) <= MAX_REPORTED_PROBLEMS:
        return problems
    more = len(problems) - MAX_REPORTED_PROBLEMS
    return [*problems[:MAX_REPORTED_PROBLEMS], f"... and {more} more problems"]


def _plan_job(
    pipeline_id: str, job: JobSpec, types: dict[str, Any], base: str, tags: Mapping[str, str]
) -> PlannedJob:
    if job.command is not None:
        name, config = "command", {"command": job.command, "cwd": base}
    else:
        name, config = str(job.type), job.config or {}
    if name not in types:
        raise InvalidInput(f"unknown job type {name!r}; known types: {', '.join(sorted(types))}")
    options: dict[str, Any] = {"job_name": job.job_id, "tags": {**tags, "pipeline": pipeline_id}, "cwd": base}
    if job.retry_count is not None:
        options["retry"] = {"max_retries": job.retry_count}
    if job.environment:
        options["environment"] = job.environment
    if job.result_files:
        options["result_files"] = [f.model_dump() if f.required else f.path for f in job.result_files]
    for option in ("timeout", "queue", "priority"):
        if getattr(job, option) is not None:
            options[option] = getattr(job, option)
    payload = types[name].validate(config)
    if job.limit is not None:
        rendered(job.limit, payload, options["tags"])  # a bad key or policy fails the file, not the release
        options["limit"] = job.limit
    return PlannedJob(job.job_id, name, payload, options, list(dict.fromkeys(job.depends_on)))


def parse(data: Any) -> tuple[str, list[JobSpec], list[str]]:
    """The pipeline id, the jobs that parsed, and every problem found (file order)."""
    if data is None:  # an empty file, or one of only comments
        return "", [], ["the pipeline is empty: give pipeline_id and jobs"]
    if not isinstance(data, dict):
        return "", [], [f"a pipeline must be a mapping with pipeline_id and jobs, got {read_as(data)}"]
    problems = [f"unknown top-level field {brief(k)}" for k in data if k not in (*PIPELINE_ID_FIELDS, "jobs")]
    given = [name for name in PIPELINE_ID_FIELDS if name in data]
    if len(given) > 1:
        problems.append("give pipeline_id or queue_id, not both")
    given_id = data.get(given[0]) if given else None
    pipeline_id = given_id if isinstance(given_id, str) else ""
    if not given:
        problems.append(f"pipeline_id is missing: {ID_RULE}")
    elif problem := not_a_string(given_id):
        problems.append(f"{given[0]}: {problem}")
    elif problem := id_problem(pipeline_id):
        problems.append(f"{given[0]} {brief(pipeline_id)} {problem}")
        pipeline_id = ""
    raw_jobs = data.get("jobs")
    if not isinstance(raw_jobs, list) or not raw_jobs:
        return pipeline_id, [], [*problems, "jobs must be a non-empty list"]
    if len(raw_jobs) > MAX_PIPELINE_JOBS:
        too_many = f"a pipeline has at most {MAX_PIPELINE_JOBS:,} jobs, got {len(raw_jobs):,}"
        return pipeline_id, [], [*problems, too_many]
    jobs: list[JobSpec] = []
    for n, raw in enumerate(raw_jobs, 1):
        name = (
            f"job {brief(raw['job_id'])}"
            if isinstance(raw, dict) and isinstance(raw.get("job_id"), str)
            else f"job #{n}"
        )
        job, errors = validated(JobSpec, raw)
        if job is None:
            problems += [f"{name}: {_where(e['loc'])}{validator_words(e['msg'])}" for e in errors]
            continue
        own = _job_problems(job)
        problems += [f"{name}: {p}" for p in own]
        if not own:
            jobs.append(job)
    ids = [raw.get("job_id") for raw in raw_jobs if isinstance(raw, dict)]
    problems += _graph_problems(jobs, [i for i in ids if isinstance(i, str)])
    return pipeline_id, jobs, problems


def id_problem(value: str) -> str | None:
    """What is wrong with ``value`` as a pipeline or job id (its length, else its characters), or None."""
    if len(value) > PIPELINE_ID_MAX_CHARS:
        return f"is {len(value)} characters; at most {PIPELINE_ID_MAX_CHARS}"
    return None if ID_PATTERN.fullmatch(value) else f"is invalid: {ID_RULE}"


def _where(loc: tuple[int | str, ...]) -> str:
    """``environment.V: `` for an error's place; a mapping's key is said at its mapping."""
    if loc[-1:] == ("[key]",):
        loc = loc[:-2]
    return f"{'.'.join(str(p) for p in loc)}: " if loc else ""


def _job_problems(job: JobSpec) -> list[str]:
    """Problems of one job on its own: its id, command/type, config and timeout."""
    problems = []
    if problem := id_problem(job.job_id):
        problems.append(f"job_id {problem}")
    if job.command is not None and job.type is not None:
        problems.append("has both command and type; give one")
    elif job.command is None and job.type is None:
        problems.append("needs either command or type")
    elif job.command is not None and job.config is not None:
        problems.append("config applies only to a job with a type, not to a command")
    return problems


def _graph_problems(jobs: list[JobSpec], ids: list[str]) -> list[str]:
    """Duplicate ids, unknown dependencies and cycles, each named."""
    problems, seen = [], set()
    for job_id in ids:
        if job_id in seen:
            problems.append(f"job {brief(job_id)}: duplicate job id")
        seen.add(job_id)
    unknown = 0
    for job in jobs:
        for dep in job.depends_on:
            if dep not in seen:
                unknown += 1
                hint = _suggestion(dep, seen) if unknown <= MAX_SUGGESTIONS else ""
                problems.append(f"job {job.job_id!r}: depends on unknown job {brief(dep)}{hint}")
    first: dict[str, list[str]] = {}
    for job in jobs:
        first.setdefault(job.job_id, job.depends_on)
    dag = Dag(first)
    problems += ["dependency cycle: " + " -> ".join([*cycle, cycle[0]]) for cycle in dag.cycles()]
    return problems


def _suggestion(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, from a bounded number of candidates."""
    similar = (k for k in known if abs(len(k) - len(name)) <= 3)
    close = difflib.get_close_matches(name, itertools.islice(similar, MAX_SUGGESTION_CANDIDATES), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


#: Deepest level the picture indents; deeper jobs stay at its column and show their depth.
PICTURE_MAX_DEPTH = 12


class Dag:
    """Jobs and their dependencies, in file order; edges to unknown jobs are ignored."""

    def __init__(self, deps: Mapping[str, Iterable[str]]) -> None:
        self.deps = {job: list(dict.fromkeys(d for d in ds if d in deps)) for job, ds in deps.items()}

    def dependants(self) -> dict[str, list[str]]:
        """Job -> the jobs that depend on it directly, in file order."""
        result: dict[str, list[str]] = {job: [] for job in self.deps}
        for job, deps in self.deps.items():
            for dep in deps:
                result[dep].append(job)
        return result

    def roots(self) -> list[str]:
        """Jobs with no dependencies, in file order."""
        return [job for job, deps in self.deps.items() if not deps]

    def order(self) -> list[str]:
        """A topological order (dependencies first), as close to file order as possible."""
        position = {job: n for n, job in enumerate(self.deps)}
        missing = {job: len(deps) for job, deps in self.deps.items()}
        dependants = self.dependants()
        ready = [position[job] for job in self.roots()]
        heapq.heapify(ready)
        names = list(self.deps)
        order = []
        while ready:
            job = names[heapq.heappop(ready)]
            order.append(job)
            for child in dependants[job]:
                missing[child] -= 1
                if not missing[child]:
                    heapq.heappush(ready, position[child])
        return order

    def cycles(self) -> list[list[str]]:
        """Each dependency cycle found, as the job ids along it (each depends on the next)."""
        state: dict[str, int] = {}  # 1 on the current path, 2 done
        found: dict[tuple[str, ...], list[str]] = {}
        for start in self.deps:
            if start in state:
                continue
            path, stack = [start], [iter(self.deps[start])]
            state[start] = 1
            while stack:
                nxt = next(stack[-1], None)
                if nxt is None:
                    state[path.pop()] = 2
                    stack.pop()
                elif nxt not in state:
                    state[nxt] = 1
                    path.append(nxt)
                    stack.append(iter(self.deps[nxt]))
                elif state[nxt] == 1:
                    cycle = path[path.index(nxt) :]
                    first = cycle.index(min(cycle))
                    key = tuple(cycle[first:] + cycle[:first])
                    found.setdefault(key, cycle)
        return list(found.values())

    def picture(self, label: Callable[[str], str]) -> list[str]:
        """The DAG as text lines: each job under the dependency that releases it last.

        A job with several dependencies appears once, under the latest of them in order,
        with the others named as ``(also after a, b)``. Indentation stops at
        ``PICTURE_MAX_DEPTH``: deeper jobs share its column and end in ``(depth n)``, so a long
        chain draws in lines of bounded width.
        """
        order = self.order()
        position = {job: n for n, job in enumerate(order)}
        home = {job: max(deps, key=position.__getitem__) for job, deps in self.deps.items() if deps}
        children: dict[str, list[str]] = {job: [] for job in order}
        for job in order:
            if job in home:
                children[home[job]].append(job)
        lines: list[str] = []
        stack = [(root, "", True, 0) for root in reversed(self.roots())]
        while stack:
            job, prefix, last, depth = stack.pop()
            connector = "" if not depth else ("└─▶ " if last else "├─▶ ")
            others = [d for d in self.deps[job] if d != home.get(job)]
            also = f"  (also after {', '.join(others)})" if others else ""
            deep = f"  (depth {depth})" if depth > PICTURE_MAX_DEPTH else ""
            lines.append(f"{prefix}{connector}{label(job)}{also}{deep}")
            indent = 0 < depth < PICTURE_MAX_DEPTH
            inner = prefix + ("    " if last else "│   ") if indent else prefix
            kids = children[job]
            stack += [(kid, inner, kid == kids[-1], depth + 1) for kid in reversed(kids)]
        return lines
