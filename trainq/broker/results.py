"""Celery's Redis result backends, subscribing to a job's result only when someone waits for it.

Celery's Redis backend subscribes to every task's result channel as the task is sent, and
unsubscribes when its ``AsyncResult`` is dropped: two commands and ~0.1 ms per ``delay()`` for a
result that is rarely awaited. ``AsyncResult.get()`` subscribes by itself and then reads a result
already stored (``on_wait_for_pending``), so waiting from the send on adds nothing a caller sees.
The settings name these classes in Celery's ``override_backends`` (``RESULT_BACKENDS``).
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend, SentinelBackend


class _SubscribeOnWait:
    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Nothing at send time: ``AsyncResult.get()`` subscribes when it is called."""


class ResultBackend(_SubscribeOnWait, RedisBackend):
    """Celery's Redis result backend, without the subscription at send time."""


class SentinelResultBackend(_SubscribeOnWait, SentinelBackend):
    """Celery's Sentinel result backend, without the subscription at send time."""
