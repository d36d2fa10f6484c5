"""Artifacts: files a job declared in ``result_files``, copied to the artifact store.

The store is a directory (``TRAINQ_ARTIFACTS``); a job's files go under
``<pipeline id or "jobs">/<pipeline job id or job id>/``, each at its path relative to the job's
working directory (``cwd``). Each ``result_files`` entry is a glob relative to that directory,
either a string or ``{"path": glob, "required": true}``; a required entry that matches nothing
fails the attempt, one whose match cannot be copied fails the job (its work succeeded: running it
again cannot help).

An attempt collects into its own staging folder, moved into place only once its success is
recorded: a failed attempt's files are never taken for results. Nothing is read through a symlink
that leads out of the working directory; inside a directory entry, symlinks are copied as links.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from trainq.errors import ResultFilesMissing, ResultFilesUncollected
from trainq.inputs.text import nul_problem
from trainq.job.lifecycle import Plugin
from trainq.job.record import JobRecord, JobState
from trainq.settings import get_settings
from trainq.store.registry import Registry

log = logging.getLogger("trainq.job.artifacts")

#: The folder of the store where attempts collect before their success is recorded.
STAGING = ".staging"

#: A match (or a path inside it) not collected, and why.
Gap = tuple[str, str]


class Collected(NamedTuple):
    """What ``collect`` did: the paths stored (once published), the entries that matched nothing,
    and what was matched but not copied (``"path: why"``)."""

    stored: list[str]
    unmatched: list[str]
    uncollected: list[str]


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


def staging_dir(record: JobRecord) -> Path:
    """Where ``record``'s current delivery collects its files until its success is recorded."""
    return get_settings().artifacts_dir / STAGING / f"{record.id}.{record.fence}"


def collect(record: JobRecord) -> Collected:
    """Copy the files matching the job's ``result_files`` globs into its ``staging_dir``.

    Each match keeps its path relative to the job's working directory (``runs/a/model.txt`` is
    stored as ``runs/a/model.txt``), so matches of the same name never overwrite each other; what
    several entries or matches cover is copied and listed once. Entries that match nothing, and
    what was matched but not copied (``_refusal``, ``_copy``), are logged (into the job's log) and
    returned. A required entry that matched nothing raises ResultFilesMissing; one with something
    not copied raises ResultFilesUncollected. Nothing is ever written outside ``staging_dir``.
    """
    base = Path(record.options.get("cwd") or ".").resolve()
    target, final = staging_dir(record), job_dir(record)
    shutil.rmtree(target, ignore_errors=True)  # an earlier try of this delivery
    target.mkdir(parents=True)
    copied: dict[Path, None] = {}  # destinations, in the order copied
    unmatched: list[str] = []
    missing: list[str] = []
    gaps: dict[Gap, None] = {}  # each once
    unusable: list[Gap] = []
    for entry in record.options.get("result_files", []):
        pattern, required = entry_pattern(entry)
        problem = pattern_problem(pattern)
        matches = [] if problem else sorted(glob.glob(pattern, root_dir=base, recursive=True))
        if not matches:
            why = f": {problem}" if problem else ""
            log.warning("result_files entry %r matched nothing in %s%s", pattern, base, why)
            unmatched.append(pattern)
            if required:
                missing.append(pattern)
        for match in matches:
            source, destination = base / match, target / match
            if _covered(destination, copied):
                continue
            try:
                if refused := _refusal(base, match) or _outside(match, source, destination, target):
                    found = [refused]
                else:
                    found = _copy(base, source, destination)
                    copied[destination] = None
            except OSError as exc:
                found = [(str(PurePosixPath(match)), exc.strerror or str(exc))]
            for gap in found:
                log.warning("result file %s not collected: %s", *gap)
            gaps.update(dict.fromkeys(found))
            unusable += found if required else []
    if unusable:
        shown = "; ".join(f"{path} not collected: {why}" for path, why in unusable)
        raise ResultFilesUncollected(f"required result file {shown}")
    if missing:
        raise ResultFilesMissing(f"required result files matched nothing in {base}: {', '.join(missing)}")
    stored = [final / path.relative_to(target) for path in copied if not _covered(path.parent, copied)]
    return Collected([str(path) for path in stored], unmatched, [f"{path}: {why}" for path, why in gaps])


def publish(record: JobRecord) -> None:
    """Move what ``record``'s delivery collected into its ``job_dir``, replacing whatever was there."""
    staging, final = staging_dir(record), job_dir(record)
    if not staging.is_dir():
        return
    if final.is_symlink() or final.is_file():
        final.unlink()
    elif final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(final)


def _refusal(base: Path, match: str) -> Gap | None:
    """Why ``match`` is not read: a symlink on its path leads out of ``base`` (never followed), or
    it is a dangling symlink; None if it can be copied."""
    path = base
    for part in PurePosixPath(match).parts:
        path = path / part
        if path.is_symlink() and not path.resolve().is_relative_to(base):
            return _link_outside(base, path)
    if not path.exists():
        return str(PurePosixPath(match)), f"a dangling symlink (to {os.readlink(path)})"
    return None


def _link_outside(base: Path, link: Path) -> Gap:
    """The symlink ``link`` (under ``base``, leading out of it) and why it is not followed."""
    why = f"a symlink to {os.readlink(link)}, outside the working directory (not followed)"
    return str(link.relative_to(base)), why


def _outside(match: str, source: Path, destination: Path, target: Path) -> Gap | None:
    """Why copying ``source`` (``match``) to ``destination`` would write outside ``target`` after
    resolving symlinks, or None."""
    root, landing = target.resolve(), destination.resolve()
    if landing != root and root not in landing.parents:
        why = f"it would be copied outside {target}"
    elif landing == root and not source.is_dir():
        why = f"it would replace {target}"
    elif root.is_relative_to(source.resolve()):
        why = f"it holds {target}, which would be copied into itself"
    else:
        return None
    return str(PurePosixPath(match)), why


def _covered(path: Path, copied: dict[Path, None]) -> bool:
    """Whether ``path`` is, or is inside, a destination already copied."""
    return path in copied or any(parent in copied for parent in path.parents)


def _copy(base: Path, source: Path, destination: Path) -> list[Gap]:
    """Copy the file or directory ``source`` to ``destination``, making its parent directories.

    Inside a directory, a symlink leading within ``base`` is copied as a link, relative to where it
    leads (so a checkpoint dir's ``latest`` still reaches its file in the copy, and a dangling one
    stays a link); one leading out of it is skipped. Returns what was skipped or could not be
    copied inside a directory.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    if not source.is_dir():
        shutil.copy2(source, destination)
        return []
    gaps: list[Gap] = []

    def unreadable(path: Path | str, exc: OSError) -> None:
        gaps.append((str(Path(path).relative_to(base)), exc.strerror or str(exc)))

    # Linked directories are listed, not entered; an unreadable one is named.
    for folder, dirs, files in os.walk(source, onerror=lambda exc: unreadable(exc.filename, exc)):
        here = Path(folder)
        there = destination / here.relative_to(source)
        there.mkdir(exist_ok=True)
        for name in dirs + files:
            path, copy = here / name, there / name
            try:
                if not path.is_symlink():
                    if name in files:
                        shutil.copy2(path, copy)
                elif path.resolve().is_relative_to(base):
                    copy.unlink(missing_ok=True)
                    copy.symlink_to(os.path.relpath(path.resolve(), here))
                else:
                    gaps.append(_link_outside(base, path))
            except OSError as exc:
                unreadable(path, exc)
    return gaps


class Artifacts(Plugin):
    """Collects a succeeding job's ``result_files`` before its success is recorded, into a staging
    folder published once that success is committed (``collect`` says what fails the attempt)."""

    def succeeding(self, record: JobRecord) -> dict[str, Any]:
        """The stored paths, the entries that matched nothing and what was not copied, for the record."""
        if not record.options.get("result_files"):
            return {}
        try:
            collected = collect(record)
        except BaseException:
            shutil.rmtree(staging_dir(record), ignore_errors=True)
            raise
        return {
            "artifacts": collected.stored,
            "unmatched_result_files": collected.unmatched,
            "uncollected_result_files": collected.uncollected,
        }

    def finished(self, record: JobRecord, replies: list[Any]) -> None:
        """Publish a success's files, now that it is recorded."""
        if record.state is JobState.SUCCEEDED and record.options.get("result_files"):
            publish(record)

    def sweep(self, registry: Registry) -> int:
        """Publish what a recorded success left staged (its worker died before ``finished``) and
        remove what no delivery will publish (a success refused, an attempt failed after collecting)."""
        root = get_settings().artifacts_dir / STAGING
        if not root.is_dir():
            return 0
        settled = time.time() - get_settings().lease_s  # a younger folder may still be on its way
        handled = 0
        for staged in root.iterdir():
            if staged.stat().st_mtime > settled:
                continue
            job_id, _, fence = staged.name.rpartition(".")
            record = registry.find(job_id)
            state = record.state if record is not None and str(record.fence) == fence else None
            if state is JobState.RUNNING:
                continue
            if state is JobState.SUCCEEDED and record is not None:
                publish(record)
            else:
                shutil.rmtree(staged, ignore_errors=True)
            handled += 1
        return handled
