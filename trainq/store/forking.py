"""Keep a redis-py connection pool usable in a process forked while another thread uses it.

Celery's prefork pool forks a replacement process at any moment, while the worker's reaper or
sharing ticker may be inside the registry pool's lock. The child inherits that lock held by a
thread it does not have, and redis-py's ``reset()`` after a fork takes the same lock: the new
pool process hangs forever. Holding the pool's locks across ``fork()`` gives the child free ones.
"""

from __future__ import annotations

import os
import weakref

from redis import ConnectionPool


def hold_across_fork(pool: ConnectionPool) -> None:
    """Take ``pool``'s locks just before each fork of this process and free them on both sides."""
    ref = weakref.ref(pool)

    def before() -> None:
        held = ref()
        if held is not None:
            held._fork_lock.acquire()
            held._lock.acquire()

    def after() -> None:
        held = ref()
        if held is not None:
            held._lock.release()
            held._fork_lock.release()

    os.register_at_fork(before=before, after_in_parent=after, after_in_child=after)
