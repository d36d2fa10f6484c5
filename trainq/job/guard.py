"""A command's guard: the process that ties a ``command`` job's process group to the attempt running it.

The pool process starts ``python guard.py FD PID_FILE COMMAND`` in a session of its own; the guard
writes its pid (the group's id) to PID_FILE and runs ``sh -c COMMAND`` in its group. FD is the read
end of a pipe whose only writer is the pool process, so the guard reads its end (EOF) however that
process dies: the OOM killer, a hard time limit, its whole worker killed (Celery's pool processes die
with it). The guard then SIGKILLs the group, itself included, so a lost attempt's command never runs
beside the job's next attempt. (What a command leaves running after its shell exited is its own.)

Why a process: ``PR_SET_PDEATHSIG`` reaches only the shell, not what it starts; a watching thread
dies with the pool process; a cgroup needs privileges; neither ``subprocess`` nor psutil offers
more. The guard uses only the standard library and starts without ``site`` (``-I -S``, ~25 ms). A
cancel or soft timeout still goes through the pool process (``trainq.job.command.kill_group``): the
guard lets the group's SIGTERM pass and exits as the shell did. The pool process signals the group by
its id, so a guard killed on its own (its shell orphaned) does not keep a cancel from it. The worker's
main process also kills the group (``stop``, by its id too) before it re-queues or fails a job whose
pool process died, so the next attempt never starts beside this one's command.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path


def command(life: int, pid_file: Path, shell_command: str) -> list[str]:
    """The guard's command line: pipe end ``life`` to watch, ``pid_file`` to write, the shell command."""
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), str(life), str(pid_file), shell_command]


def pid_file(home: Path, job_id: str, fence: int) -> Path:
    """Where the guard of ``job_id``'s attempt on ``fence`` writes its pid (a job id may be 255
    characters, too long for a file name with more: it is hashed)."""
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:32]
    return home.absolute() / "run" / f"command-{digest}-{fence}.pid"


def stop(path: Path) -> None:
    """SIGKILL the command group whose guard wrote ``path`` (the group's id is the guard's pid); remove
    ``path``. A guard that ends as it should removes ``path`` itself.

    The group is killed while its guard runs (its command line names ``path``) and once the guard is
    gone, killed on its own: its shell may live on, orphaned, and no process can take a pid that still
    names a live group. A live process of that pid that is not the guard took it once the group was
    empty, and is left alone.
    """
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        return  # no command of this attempt runs
    import psutil  # here: the guard itself starts without it

    try:
        guard = psutil.Process(pid)
        ours = guard.status() == psutil.STATUS_ZOMBIE or str(path) in guard.cmdline()
    except psutil.NoSuchProcess:
        ours = True  # the guard is gone: a group of its id holds only what its shell left
    except psutil.Error:
        ours = False
    if ours:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)


def _watch(life: int, path: Path) -> None:
    """Wait for the pool process's end of the pipe to close, then kill the group, this guard too."""
    while os.read(life, 1):
        pass
    path.unlink(missing_ok=True)
    os.killpg(os.getpid(), signal.SIGKILL)


def main(args: list[str]) -> int:
    """Run the shell command in this guard's group until it ends or the pool process is gone."""
    life, path, shell_command = int(args[0]), Path(args[1]), args[2]
    signal.signal(signal.SIGTERM, lambda signum, frame: None)  # a cancel's SIGTERM is the shell's to obey
    path.write_text(str(os.getpid()))
    threading.Thread(target=_watch, args=(life, path), daemon=True).start()
    code = subprocess.Popen(["/bin/sh", "-c", shell_command]).wait()
    path.unlink(missing_ok=True)
    if code < 0:  # end as the shell did, so the pool process sees its signal
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
