"""Pipelines: DAGs of jobs, each job started as soon as its own dependencies have succeeded.

Celery's canvas alone cannot run an arbitrary DAG exactly: a chord cannot share a member
with another chord, and flattening the DAG into levels makes a job wait for unrelated jobs
of the level before it. So trainq keeps the DAG in Redis and releases jobs itself:

- ``run`` validates everything first (``trainq.pipelines.dag`` and each job's type model); then one
  transaction stores the run (each job's spec, its step, and its count of unfinished
  dependencies), and the roots are recorded and sent as one group (``trainq.job.send.send_group``).
- When a job succeeds, its finish (one script call, see ``trainq.pipelines.progress``) also
  marks it succeeded in its run, decrements its dependants' counters and returns those that
  reached zero; they are recorded and sent as one group. The run script is the only place
  a job is released, so a repeated finish never sends a job twice.
- When a job ends failed, dead or cancelled, its finish marks every waiting descendant
  ``blocked`` by it; independent branches run on; the run ends ``failed`` when nothing can.
- A pipeline job's id is ``<run id>.<job id>``; its first delivery carries fence 1, so a worker
  never takes it for a first delivery from a Celery client without trainq (fence 0, no record).
- A process dying between recording a success and releasing (or between release and send)
  leaves a job ``released`` with a finished record, or none. ``sweep`` (each worker's reaper,
  and ``pipeline status``) finishes such releases after a grace period; records are only
  created where none exists.

The builder lives here; the run store in ``trainq.pipelines.runs``, its lifecycle plugin in
``trainq.pipelines.progress``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trainq.errors import InvalidInput
from trainq.pipelines import dag
from trainq.pipelines.runs import get_runs, specs_of


class Pipeline:
    """A DAG of jobs built in Python or loaded from a file: ``Pipeline("etl").add("a", command="...")``."""

    def __init__(self, pipeline_id: str, base_dir: str | Path | None = None, source: str = "python") -> None:
        self.data: Any = {"pipeline_id": pipeline_id, "jobs": []}
        self.base_dir = Path(os.path.abspath(base_dir or Path.cwd()))
        self.source = source

    @classmethod
    def from_dict(cls, data: Any, base_dir: str | Path | None = None, source: str = "python") -> Pipeline:
        """A pipeline from a mapping in the file format (checked when validated or run)."""
        pipeline = cls("", base_dir, source)
        pipeline.data = data
        return pipeline

    def add(
        self,
        job_id: str,
        *,
        command: str | None = None,
        type: str | None = None,
        config: dict[str, Any] | None = None,
        depends_on: list[str] | tuple[str, ...] = (),
        retry_count: int | None = None,
        timeout: str | float | None = None,
        environment: dict[str, str] | None = None,
        result_files: list[str] | None = None,
        queue: str | None = None,
        priority: int | None = None,
    ) -> Pipeline:
        """Add a job (a shell ``command``, or a job ``type`` with ``config``); returns the pipeline."""
        fields = {
            "job_id": job_id,
            "command": command,
            "type": type,
            "config": config,
            "retry_count": retry_count,
            "timeout": timeout,
            "environment": environment,
            "result_files": result_files,
            "queue": queue,
            "priority": priority,
            "depends_on": list(depends_on),
        }
        self.data["jobs"].append({k: v for k, v in fields.items() if v is not None})
        return self

    def validate(self) -> list[dag.PlannedJob]:
        """Every job checked, with no network work; raises PipelineError listing all problems."""
        return dag.plan(self.data, self.base_dir)[1]

    def run(self, tags: dict[str, str] | None = None) -> str:
        """Validate, record and start the pipeline, its jobs also tagged ``tags``; return the run id.
        Nothing is sent if invalid."""
        pipeline_id, planned = dag.plan(self.data, self.base_dir, tags)
        return get_runs().start(pipeline_id, planned, self.source)


def load_pipeline(path: str | Path) -> Pipeline:
    """A pipeline from a JSON or YAML file, or ``-`` for standard input.

    Its commands run in the directory of ``path`` as given, not resolved: a symlinked file runs where
    its link is, as the user named it. A pipe's (``<(cmd)``, ``/dev/stdin``, ``-``) run in the
    current directory.
    """
    if str(path) == dag.STDIN:
        return Pipeline.from_dict(dag.load(dag.STDIN), source=dag.STDIN_NAME)
    given = Path(os.path.abspath(path))
    base_dir = given.parent if given.is_file() else None
    return Pipeline.from_dict(dag.load(given), base_dir=base_dir, source=str(given))


def file_changed(run_id: str) -> str | None:
    """The file ``run_id`` started from, when it now plans other jobs than the run stored (or is no
    valid pipeline); None for a run from elsewhere, a file gone, or one unchanged. Only for a note:
    a resume always re-runs the stored specs."""
    source = get_runs().source(run_id)
    if not Path(source).is_absolute() or not Path(source).is_file():
        return None
    try:
        planned = load_pipeline(source).validate()
    except InvalidInput:
        return source
    now = {job: json.loads(json.dumps(spec)) for job, spec in specs_of(planned).items()}  # as stored
    return None if now == get_runs().specs(run_id) else source


def run_pipeline_file(path: str | Path) -> str:
    """Load, validate and start the pipeline in ``path``; return the run id (used by schedules)."""
    return load_pipeline(path).run()
