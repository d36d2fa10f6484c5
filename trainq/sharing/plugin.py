"""The ``Sharing`` lifecycle plugin: a keyed job's end gives its slot (and its place in a fair queue's
window) back in the finish's own round trip, then the next parked jobs start; a keyed job queued
again (a manual retry) meets its key's gate as a new job does; each sweep forgets slots of jobs that
ended without a finish (a record dropped) and wakes every active key."""

from __future__ import annotations

from trainq.job.lifecycle import Plugin
from trainq.job.record import JobRecord
from trainq.job.send import Hold
from trainq.sharing.admission import admit
from trainq.sharing.gate import key_of, park_or_pass
from trainq.store.registry import Effects, Registry
from trainq.store.sharing import get_sharing


class Sharing(Plugin):
    """Gives a finished keyed job's slot back and starts what may start next."""

    def finishing(self, record: JobRecord, effects: Effects) -> None:
        """Release ``record``'s slot (or take it out of the parked line) with its finish."""
        if key := key_of(record):
            get_sharing().release(key, record.id, record.queue, effects)

    def finished(self, record: JobRecord, replies: list[object]) -> None:
        """Start the jobs the freed slot (or place in a fair queue's window) lets start."""
        if (key := key_of(record)) and get_sharing().frees(replies):
            admit([key])

    def gate(self, record: JobRecord) -> Hold | None:
        """A keyed job's gate: it takes a slot of its key and is sent, or it is parked."""
        return park_or_pass if key_of(record) else None

    def sweep(self, registry: Registry) -> int:
        """Drop slots and parked places of jobs that ended or vanished; returns how many."""
        store = get_sharing()
        keys = store.active()
        holders = store.holders_of(keys)
        ids = [job_id for running, parked in holders.values() for job_id in (*running, *parked)]
        alive = {r.id for r in registry.get_many(ids) if not r.state.finished}
        dropped = 0
        for key, (running, parked) in holders.items():
            if gone := [job_id for job_id in (*running, *parked) if job_id not in alive]:
                store.drop(key, gone)
                dropped += len(gone)
        admit(keys)
        return dropped
