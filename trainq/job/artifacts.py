"""Artifacts: files a job declared in ``result_files``, copied to the artifact store.

The store is a directory (``TRAINQ_ARTIFACTS``); a job's files go under
``<pipeline id or "jobs">/<pipeline job id or job id>/``. Each ``result_files`` entry is a
glob relative to the job's working directory (``cwd``), either a string or
``{"path": glob, "required": true}``; a required entry that matches nothing fails the attempt.
"""

from __future__ import annotations

import glob
import logging
import shutil
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from trainq.errors import ResultFilesMissing
from trainq.job.lifecycle import Plugin
from trainq.job.record import JobRecord
from trainq.settings import get_settings

log = logging.getLogger("trainq.job.artifacts")


class Collected(NamedTuple):
    """What ``collect`` did: the stored paths and the entries that matched nothing."""

    stored: list[str]
    unmatched: list[str]


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a ``result_files`` entry, or None (a relative glob, no ``..``)."""
    if not pattern.strip():
        return "is empty"
    if "\0" in pattern:
        return "contains a NUL character"
    path = PurePosixPath(pattern)
    if path.is_absolute():
        relative = pattern.lstrip("/") or "*"
        return (
            f"{pattern!r} is absolute; write it relative to the job's working directory "
            f"(the pipeline file's directory), e.g. {relative!r}"
        )
    if ".." in path.parts:
        return f"{pattern!r} contains '..'; result files must be inside the job's working directory"
    return None


def entry_pattern(entry: Any) -> tuple[str, bool]:
    """The glob of a ``result_files`` entry and whether it is required."""
    if isinstance(entry, dict):
        return str(entry.get("path", "")), bool(entry.get("required", False))
    return str(entry), False


def job_dir(record: JobRecord) -> Path:
    """Where ``record``'s artifacts are stored."""
    group = record.pipeline_id or "jobs"
    return get_settings().artifacts_dir / group / (record.pipeline_job or record.id)


def collect(record: JobRecord) -> Collected:
    """Copy the files matching the job's ``result_files`` globs into its ``job_dir``.

    Entries that match nothing are logged (into the job's log) and returned; if one of them is
    required, raises ResultFilesMissing. Nothing is ever written outside ``job_dir``.
    """
    base = Path(record.options.get("cwd") or ".").resolve()
    target = job_dir(record)
    stored: list[str] = []
    unmatched: list[str] = []
    missing: list[str] = []
    for entry in record.options.get("result_files", []):
        pattern, required = entry_pattern(entry)
        problem = pattern_problem(pattern)
        matches = [] if problem else sorted(glob.glob(pattern, root_dir=base, recursive=True))
        copied = [path for match in matches if (path := _copy(base / match, target))]
        if not copied:
            why = f": {problem}" if problem else ""
            log.warning("result_files entry %r matched nothing in %s%s", pattern, base, why)
            unmatched.append(pattern)
            if required:
                missing.append(pattern)
        stored += copied
    if missing:
        raise ResultFilesMissing(f"required result files matched nothing in {base}: {', '.join(missing)}")
    return Collected(stored, unmatched)


def _copy(source: Path, target: Path) -> str | None:
    """Copy ``source`` into ``target``; None if the copy would land anywhere but directly inside it."""
    target.mkdir(parents=True, exist_ok=True)
    destination = target / source.name
    if source.name in ("", ".", "..") or destination.resolve().parent != target.resolve():
        log.warning("result file %s not collected: it would be copied outside %s", source, target)
        return None
    if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True)
    else:
        shutil.copy2(source, destination)
    return str(destination)


class Artifacts(Plugin):
    """Collects a succeeding job's ``result_files`` before its success is recorded (a required
    entry that matches nothing fails the attempt)."""

    def succeeding(self, record: JobRecord) -> dict[str, Any]:
        """The stored paths and the entries that matched nothing, for the record."""
        if not record.options.get("result_files"):
            return {}
        collected = collect(record)
        return {"artifacts": collected.stored, "unmatched_result_files": collected.unmatched}
