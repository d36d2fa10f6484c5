"""A command's guard: the process that ties a ``command`` job's processes to the attempt running it.

The pool process starts ``python guard.py FD PID_FILE COMMAND`` in a session of its own; the guard
writes its pid (the group's id) to PID_FILE, becomes its descendants' subreaper and runs
``sh -c COMMAND`` in its group. A process whose parent exits (a double fork) is re-parented to the
guard, so while the guard runs every process the command started is its descendant, also one that
left the group (``setsid``, ``setpgid``): the parent links in /proc reach them all (``descendants``).

FD is the read end of a pipe whose only writer is the pool process, so the guard reads its end (EOF)
however that process dies: the OOM killer, a hard time limit, its whole worker killed (Celery's pool
processes die with it). The guard then SIGKILLs its descendants and its group, itself included, so a
lost attempt's command never runs beside the job's next attempt.

A cancel or soft timeout goes through the pool process (``trainq.job.command.kill_group``), which
SIGTERMs the group: the guard forwards the SIGTERM to its descendants outside the group, and once the
shell has ended it waits for all of them before it exits as the shell did. So until everything the
command started has ended, the guard runs, and the pool process's SIGKILL after its grace (``kill``:
the guard's descendants, then its group) reaches what ignored the SIGTERM. Without a SIGTERM the guard
exits with its shell: what a command leaves running after its shell exited is its own.

A worker frozen whole (SIGSTOP: a paused VM, a debugger, an operator) stops renewing the job's lease,
and the job runs again elsewhere; its command, in a session of its own, is not frozen with it. So the
guard follows the pool process that started it: while that process is stopped, the guard stops the
command's processes, and continues them when it continues (``_follow_stops``). Resumed, the pool
process finds its lease gone at its next renewal and kills the command.

Why a process: ``PR_SET_PDEATHSIG`` reaches only the shell, not what it starts; a watching thread
dies with the pool process; a cgroup needs privileges; neither ``subprocess`` nor psutil offers
more. The guard uses only the standard library and starts without ``site`` (``-I -S``, ~25 ms). The
pool process signals the group by its id, so a guard killed on its own (its shell orphaned) does not
keep a cancel from it (what left the group then went to init, out of reach). The worker's main
process also kills the guard's descendants and its group (``stop``) before it re-queues or fails a job
whose pool process died, so the next attempt never starts beside this one's command.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

#: ``prctl``'s option (linux/prctl.h) that makes orphaned descendants the caller's children.
PR_SET_CHILD_SUBREAPER = 36
#: How often the guard looks whether the pool process that started it is stopped (``_follow_stops``).
STOP_POLL_S = 0.2
#: The state /proc gives a process stopped by a signal (``t``, a tracer's stop, is left alone).
STOPPED = "T"


def command(life: int, pid_file: Path, shell_command: str) -> list[str]:
    """The guard's command line: pipe end ``life`` to watch, ``pid_file`` to write, the shell command."""
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), str(life), str(pid_file), shell_command]


def pid_file(home: Path, job_id: str, fence: int) -> Path:
    """Where the guard of ``job_id``'s attempt on ``fence`` writes its pid (a job id may be 255
    characters, too long for a file name with more: it is hashed)."""
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:32]
    return home.absolute() / "run" / f"command-{digest}-{fence}.pid"


def state(pid: int) -> str | None:
    """The state /proc gives process ``pid`` (``R``, ``S``, ``T``...), None once it is gone."""
    try:
        return _stat(Path("/proc", str(pid), "stat").read_text())[0]
    except OSError:
        return None


def _stat(text: str) -> list[str]:
    """The fields of a /proc ``stat`` after the name (which may hold ")"): state, parent, group..."""
    return text.rpartition(")")[2].split()


def descendants(pid: int) -> list[tuple[int, int]]:
    """``(pid, group)`` of each running descendant of ``pid``, found by the parent links in /proc."""
    children: dict[int, list[tuple[int, int]]] = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path("/proc", name, "stat").read_text()
        except OSError:
            continue  # it just ended
        now, parent, group = _stat(stat)[:3]
        if now not in "ZX":
            children.setdefault(int(parent), []).append((int(name), int(group)))
    found: list[tuple[int, int]] = []
    todo = [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += [child for child, _ in below]
    return found


def kill(pid: int) -> None:
    """SIGKILL the descendants of the guard ``pid``, then its group (a shell it orphaned too), looking
    again until a look finds none not yet killed: a process forks until its SIGKILL is sent, not after."""
    killed: set[int] = set()
    while found := {child for child, _ in descendants(pid)} - killed:
        _send(found, signal.SIGKILL)
        killed |= found
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def stop(path: Path) -> None:
    """SIGKILL the command whose guard wrote ``path`` (``kill``); remove ``path``. A guard that ends as
    it should removes ``path`` itself.

    The command is killed while its guard runs (its command line names ``path``) and once the guard is
    gone, killed on its own: its shell may live on, orphaned, in the group (what left the group is out
    of reach then), and no process can take a pid that still names a live group. A live process of that
    pid that is not the guard took it once the group was empty, and is left alone.
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
        kill(pid)
    path.unlink(missing_ok=True)


def _send(pids: set[int], signum: int) -> None:
    """Send ``signum`` to each of ``pids`` that still runs."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _watch(life: int, path: Path, ending: threading.Lock) -> None:
    """Wait for the pool process's end of the pipe to close, then kill the command, this guard too;
    holding ``ending``, so the guard does not exit with its killed shell before all is killed."""
    while os.read(life, 1):
        pass
    ending.acquire()
    path.unlink(missing_ok=True)
    kill(os.getpid())


def _follow_stops(parent: int) -> None:
    """While ``parent`` (the pool process) is stopped, keep the command's processes stopped; continue
    those this guard stopped once it continues. Processes the command stopped itself are left as they
    are. Ends with ``parent``."""
    held: set[int] = set()
    while (now := state(parent)) is not None:
        if now == STOPPED:
            # looked at again until a look finds none to stop: a process forks until it is stopped
            while found := {
                pid for pid, _ in descendants(os.getpid()) if pid not in held and state(pid) != STOPPED
            }:
                _send(found, signal.SIGSTOP)
                held |= found
        elif held:
            _send(held, signal.SIGCONT)
            held = set()
        time.sleep(STOP_POLL_S)


def _become_subreaper() -> None:
    """Have orphaned descendants re-parented to this guard, not to init: they stay its descendants."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def main(args: list[str]) -> int:
    """Run the shell command in this guard's group until it ends or the pool process is gone."""
    life, path, shell_command = int(args[0]), Path(args[1]), args[2]
    terminated = threading.Event()

    def forward(signum: int, frame: object) -> None:
        """A cancel's SIGTERM reached the group: the shell's to obey, and each descendant's outside it."""
        terminated.set()
        _send({pid for pid, group in descendants(os.getpid()) if group != os.getpid()}, signum)

    signal.signal(signal.SIGTERM, forward)
    _become_subreaper()
    path.write_text(str(os.getpid()))
    ending = threading.Lock()
    threading.Thread(target=_watch, args=(life, path, ending), daemon=True).start()
    threading.Thread(target=_follow_stops, args=(os.getppid(),), daemon=True).start()
    shell = subprocess.Popen(["/bin/sh", "-c", shell_command])
    while (ended := os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)) and ended.si_pid != shell.pid:
        os.waitpid(ended.si_pid, 0)  # a process adopted from a parent that exited
    code = shell.wait()
    if terminated.is_set():  # stay until all the command started ended, or the pool process kills it
        with contextlib.suppress(ChildProcessError):
            while True:
                os.wait()
    ending.acquire()  # never released: a watcher holding it kills all, this guard last
    path.unlink(missing_ok=True)
    if code < 0:  # end as the shell did, so the pool process sees its signal
        if code != -signal.SIGKILL:  # (whose action cannot be set)
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
