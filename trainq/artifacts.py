"""Artifacts: files a job declared in ``result_files``, copied to the artifact store.

The store is a directory (``TRAINQ_ARTIFACTS``); a job's files go under
``<pipeline id or "jobs">/<pipeline job id or job id>/``.
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

from trainq.jobs import JobRecord
from trainq.settings import get_settings


def job_dir(record: JobRecord) -> Path:
    """Where ``record``'s artifacts are stored."""
    group = record.pipeline_id or "jobs"
    return get_settings().artifacts_dir / group / (record.pipeline_job or record.id)


def collect(record: JobRecord) -> list[str]:
    """Copy the files matching the job's ``result_files`` globs; return the stored paths."""
    base = Path(record.options.get("cwd") or ".")
    target = job_dir(record)
    stored: list[str] = []
    for pattern in record.options.get("result_files", []):
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        for match in sorted(glob.glob(full, recursive=True)):
            source = Path(match)
            destination = target / source.name
            target.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, destination, dirs_exist_ok=True)
            else:
                shutil.copy2(source, destination)
            stored.append(str(destination))
    return stored
