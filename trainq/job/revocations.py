"""The ``Revocations`` lifecycle plugin: a cancelled job's Celery result is REVOKED, as Celery stores
it for a revoked task, written by the process that cancels it, so a client's ``get()`` raises at once.

Only the job's own result: its chain, chord and monitors hear of the cancel from the worker that
stops or drops its delivery (``JobTask.revoke_if_cancelled``), where the message's canvas is known.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from trainq.job.lifecycle import Plugin
from trainq.job.record import JobRecord, JobState

#: The reason Celery's TaskRevokedError gives for a cancelled job with no error of its own.
CANCELLED_REASON = "cancelled"


class Revocations(Plugin):
    """Stores Celery's REVOKED result for each job that ends cancelled."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def finished(self, record: JobRecord, replies: list[Any]) -> None:
        """After a cancel (or a refusal by a key's supersede policy): REVOKED, with the job's error if any."""
        if record.state is JobState.CANCELLED:
            self.app.backend.mark_as_revoked(record.id, record.error or CANCELLED_REASON)
