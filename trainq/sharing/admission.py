"""Admission: start parked jobs while their keys have free slots and tokens, taking turns between
keys, and send each through the one send path (``trainq.job.task.publish``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from trainq.job.record import JobState
from trainq.job.task import SEND_ERRORS, publish
from trainq.job.types import job_types
from trainq.store.registry import Registry
from trainq.store.sharing import get_sharing

log = logging.getLogger("trainq.sharing.admission")

#: Most parked jobs one admission starts; the rest start in the next, a moment later.
ADMIT_BATCH = 200


def admit(registry: Registry, touched: Iterable[str] = ()) -> float | None:
    """Start what may start now, looking again at ``touched`` keys (a slot freed, a limit changed).

    Returns the seconds until a key waiting only for its rate has a token, or None.
    """
    store = get_sharing()
    started, wait = store.admit(list(touched), ADMIT_BATCH)
    if not started:
        return wait
    keys = {job_id: key for key, job_id in started}
    types = job_types()
    for record in registry.get_many(keys):
        if record.state is not JobState.QUEUED:
            continue  # ended meanwhile: its finish gave the slot back
        try:
            publish(types[record.type], record, record.fence)
        except (*SEND_ERRORS, KeyError) as exc:  # the broker is away, or the type is not known here
            log.warning("could not send admitted job %s (%r); parked again", record.id, exc)
            store.repark(keys[record.id], record.id)
    return wait
