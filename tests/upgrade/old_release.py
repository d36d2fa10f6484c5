"""The release before issue #13 (commit 95980f0), materialised from git for upgrade tests.

``old_code`` extracts that commit's ``trainq``, ``workers`` and the test job types into a folder;
``start_old_worker`` runs the ``celery -A trainq worker`` command line that release builds, from it
(``PYTHONPATH`` = that folder, the installed dependencies), stopped by pid/process group like every
other test process.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from tests.fixtures import ROOT, Process, Processes, wait_for

RELEASE = "95980f0"
#: What the old release needs to run a worker and submit the tests' job types.
PATHS = (
    "trainq",
    "workers",
    "beat_schedule.py",
    "pyproject.toml",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/fixtures.py",
    "tests/jobs.py",
    "tests/messages.py",
)


def old_code(destination: Path, commit: str = RELEASE) -> Path:
    """Extract ``commit``'s code into ``destination``; fail the test if the repo lacks that commit."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True, text=True
    )
    if found.returncode != 0:
        pytest.fail(
            f"commit {commit} (the release the upgrade tests compare with) is not in the history of "
            f"{ROOT}: fetch it, or run these tests from a full clone ({found.stderr.strip()})"
        )
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, *PATHS], capture_output=True, check=True
    )
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(destination, filter="data")
    return destination


def old_env(code: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that makes a Python process import the old release from ``code``."""
    return {**(env or {}), "PYTHONPATH": str(code)}


def start_old_worker(
    processes: Processes,
    code: Path,
    *queues: str,
    name: str | None = None,
    concurrency: int = 1,
    env: dict[str, str] | None = None,
) -> Process:
    """A worker of the old release on ``queues``, started with the command line that release builds."""
    name = name or f"old{uuid.uuid4().hex[:6]}"
    extra = ["-P", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    source = (
        "import json, sys\nfrom trainq.worker import worker_command\nprint(json.dumps(worker_command("
        "sys.argv[1].split(','), name=sys.argv[2], concurrency=int(sys.argv[3]), extra=sys.argv[4:])))"
    )
    args = json.loads(python_old(code, source, ",".join(queues), name, str(concurrency), *extra))
    process = Process(args, processes.tmp / f"{name}.log", old_env(code, env), cwd=code)
    processes.started.append(process)
    wait_for(lambda: " ready." in process.output() or not process.alive(), 30, message=f"old worker {name}")
    assert process.alive(), process.output()
    return process


def python_old(code: Path, source: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``source`` with the old release's code; its stdout.

    Run from ``code`` itself: ``python -c`` puts its working directory first on ``sys.path``.
    """
    result = subprocess.run(
        [sys.executable, "-c", source, *args],
        cwd=code,
        env={**os.environ, **old_env(code, env)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def submit_old(code: Path, calls: list[str], env: dict[str, str] | None = None) -> list[str]:
    """Run ``submit(...)`` calls with the old release's code; the job ids."""
    source = "from trainq.control import submit\n" + "\n".join(f"print({call})" for call in calls)
    return python_old(code, source, env=env).split()
