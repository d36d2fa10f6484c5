"""Artifacts: files a job declared in ``result_files``, copied to the artifact store.

The store is a directory (``TRAINQ_ARTIFACTS``); a job's files go under
``<pipeline id or "jobs">/<pipeline job id or job id>/``, each at its path relative to the job's
working directory (``cwd``). Each ``result_files`` entry is a glob relative to that directory,
either a string or ``{"path": glob, "required": true}``; a required entry that matches nothing
fails the attempt.
"""

from __future__ import annotations

import glob
import logging
import shutil
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from trainq.errors import ResultFilesMissing
from trainq.inputs.text import nul_problem
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
    if problem := nul_problem(pattern):
        return problem
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

    Each match keeps its path relative to the job's working directory (``runs/a/model.txt`` is
    stored as ``<job_dir>/runs/a/model.txt``), so matches of the same name never overwrite each
    other; what several entries or matches cover is copied and listed once. Entries that match
    nothing are logged (into the job's log) and returned; if one of them is required, raises
    ResultFilesMissing. Nothing is ever written outside ``job_dir``.
    """
    base = Path(record.options.get("cwd") or ".").resolve()
    target = job_dir(record)
    target.mkdir(parents=True, exist_ok=True)
    copied: dict[Path, None] = {}  # destinations, in the order copied
    unmatched: list[str] = []
    missing: list[str] = []
    for entry in record.options.get("result_files", []):
        pattern, required = entry_pattern(entry)
        problem = pattern_problem(pattern)
        matches = [] if problem else sorted(glob.glob(pattern, root_dir=base, recursive=True))
        found = False
        for match in matches:
            source, destination = base / match, target / match
            if not _inside(source, destination, target):
                continue
            found = True
            if not _covered(destination, copied):
                _copy(source, destination)
                copied[destination] = None
        if not found:
            why = f": {problem}" if problem else ""
            log.warning("result_files entry %r matched nothing in %s%s", pattern, base, why)
            unmatched.append(pattern)
            if required:
                missing.append(pattern)
    if missing:
        raise ResultFilesMissing(f"required result files matched nothing in {base}: {', '.join(missing)}")
    return Collected([str(path) for path in copied if not _covered(path.parent, copied)], unmatched)


def _inside(source: Path, destination: Path, target: Path) -> bool:
    """Whether copying ``source`` to ``destination`` writes only inside ``target`` (after resolving
    symlinks, such as one planted in the store); logs why not."""
    root, landing = target.resolve(), destination.resolve()
    if landing != root and root not in landing.parents:
        why = f"it would be copied outside {target}"
    elif landing == root and not source.is_dir():
        why = f"it would replace {target}"
    elif root.is_relative_to(source.resolve()):
        why = f"it holds {target}, which would be copied into itself"
    else:
        return True
    log.warning("result file %s not collected: %s", source, why)
    return False


def _covered(path: Path, copied: dict[Path, None]) -> bool:
    """Whether ``path`` is, or is inside, a destination already copied."""
    return path in copied or any(parent in copied for parent in path.parents)


def _copy(source: Path, destination: Path) -> None:
    """Copy the file or directory ``source`` to ``destination``, making its parent directories."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True)
    else:
        shutil.copy2(source, destination)


class Artifacts(Plugin):
    """Collects a succeeding job's ``result_files`` before its success is recorded (a required
    entry that matches nothing fails the attempt)."""

    def succeeding(self, record: JobRecord) -> dict[str, Any]:
        """The stored paths and the entries that matched nothing, for the record."""
        if not record.options.get("result_files"):
            return {}
        collected = collect(record)
        return {"artifacts": collected.stored, "unmatched_result_files": collected.unmatched}
