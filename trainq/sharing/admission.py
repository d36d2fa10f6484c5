"""Admission: start parked jobs while their keys have free slots and tokens, taking turns between
keys, and send each through the one send path (``trainq.job.send``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from trainq.errors import BrokerUnavailable
from trainq.job import send
from trainq.job.record import JobRecord, JobState
from trainq.job.types import job_types
from trainq.store.sharing import get_sharing

log = logging.getLogger("trainq.sharing.admission")

#: Most parked jobs one admission starts; the rest start in the next, a moment later.
ADMIT_BATCH = 200


def admit(touched: Iterable[str] = ()) -> float | None:
    """Start what may start now, looking again at ``touched`` keys (a slot freed, a limit changed).

    Returns the seconds until a key waiting only for its rate has a token, or None.
    """
    store = get_sharing()
    started, wait = store.admit(list(touched), ADMIT_BATCH)
    types = job_types() if started else {}
    for key, raw in started:
        record = JobRecord.from_hash(raw) if raw else None
        if record is None or record.state not in (JobState.QUEUED, JobState.DELAYED):
            continue  # ended meanwhile: its finish gave the slot back (a sweep drops a vanished one's)
        try:
            send.send_recorded(types[record.type], record)
        except (BrokerUnavailable, KeyError) as exc:  # the broker is away, or the type is not known here
            log.warning("could not send admitted job %s (%r); parked again", record.id, exc)
            store.repark(key, record.id, record.queue)
    return wait
