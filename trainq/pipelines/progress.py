"""How a pipeline run moves on as its jobs end: a lifecycle plugin (``trainq.job.lifecycle``).

A pipeline job's finish carries its run's step (release the dependants, or block the
descendants) in the same script call. The dependants its success alone releases are built before
and written and sent by that call too; any other job released is sent right after. The reaper's
sweep finishes releases a dying process left undone and drops runs past their retention.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from trainq.job.lifecycle import Plugin
from trainq.job.record import JobRecord
from trainq.job.send import Hold
from trainq.pipelines.runs import get_runs, run_step
from trainq.settings import get_settings
from trainq.store.registry import Effects, Registry

log = logging.getLogger("trainq.pipelines.progress")


class RunProgress(Plugin):
    """Moves each pipeline job's run on when the job ends."""

    def finishing(self, record: JobRecord, effects: Effects) -> None:
        """The run's step for this job's end, committed with it; a success also writes and sends the
        dependants it alone releases (built here from the specs its claim returned)."""
        if found := run_step(record):
            step, rest = found
            run_id = record.pipeline_id or ""
            runs = get_runs()
            args = [run_id, repr(time.time()), *rest]
            if step == "run_succeeded" and record.next_specs:
                args.append(runs.built(run_id, record.next_specs))
            effects.run_step(step, runs.script_keys(run_id), args)

    def gate(self, record: JobRecord) -> Hold | None:
        """A pipeline job queued again (a resume, a retry) is sent only while its run still runs: a
        cancel that read it stopped, before it was re-queued, has it cancelled here."""
        return get_runs().held_by_cancel if record.pipeline_id else None

    def finished(self, record: JobRecord, replies: list[Any]) -> None:
        """Send the jobs the step released (or log what it blocked)."""
        if replies:
            get_runs().moved_on(record, replies[0])

    def sweep(self, registry: Registry) -> int:
        """Finish releases a dying process left undone, and drop runs past their retention."""
        settings = get_settings()
        runs = get_runs()
        handled = runs.sweep_all(settings.lease_s)
        if handled:
            log.warning("pipeline sweep finished %d lost releases", handled)
        dropped = runs.expire(settings.retention, time.time(), settings.retention_batch)
        if dropped:
            log.info("retention: dropped %d pipeline runs", dropped)
        return handled + dropped
