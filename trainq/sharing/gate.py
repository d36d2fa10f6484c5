"""The gate a new keyed job passes when it is sent: it gets a slot of its key now, or it is parked
(recorded ``queued`` with the reason); a key's supersede policy cancels the older jobs, or refuses
the newer one."""

from __future__ import annotations

import logging
from dataclasses import replace

from trainq.errors import InvalidTransition
from trainq.job import lifecycle
from trainq.job.record import WAITING_STATES, JobEvent, JobRecord, JobState
from trainq.store.registry import Registry, get_registry
from trainq.store.sharing import Arrival, get_sharing

log = logging.getLogger("trainq.sharing.gate")
#: How the error of a job its key's ``supersede: refuse`` refused begins.
REFUSED = "refused: "


def key_of(record: JobRecord) -> str | None:
    """The concurrency key ``record`` shares, or None."""
    limit = record.options.get("limit")
    return limit["key"] if limit else None


def park_or_pass(record: JobRecord) -> bool:
    """Decide for a just recorded (or re-queued) job: False sends it now (it holds a slot, or has no
    key); True keeps it (parked for a slot, or refused by its key's supersede policy)."""
    limit = record.options.get("limit")
    if not limit:
        return False
    key = limit["key"]
    brought = {k: v for k, v in limit.items() if k not in ("key", "fair")}
    registry = get_registry()
    fair = record.queue if limit.get("fair") else None
    arrival = get_sharing().park_or_pass(key, record.id, brought or None, fair)
    if arrival.supersede == "refuse" and (older := _older(registry, record, key)):
        reason = f"{REFUSED}job {older[0].id} of {key} is still waiting or running"
        lifecycle.finish(
            registry, record, JobState.CANCELLED, {"error": reason}, reason=reason, allowed=WAITING_STATES
        )
        return True
    if arrival.supersede == "cancel":
        for job in _older(registry, record, key):
            try:
                lifecycle.cancel(registry, job, reason=f"superseded by job {record.id} of {key}")
            except InvalidTransition:  # it ended meanwhile
                continue
    if not arrival.passed:
        event = JobEvent(state=JobState.QUEUED, at=record.updated_at, reason=wait_reason(key, arrival))
        registry.transition(record.id, JobState.QUEUED, allowed={JobState.QUEUED}, event=event)
    return not arrival.passed


def refusal(record: JobRecord) -> str | None:
    """Why ``record``'s key refused it (naming the job that holds the key), or None if it did not."""
    refused = record.state is JobState.CANCELLED and (record.error or "").startswith(REFUSED)
    return record.error if refused else None


def _older(registry: Registry, record: JobRecord, key: str) -> list[JobRecord]:
    """The unfinished jobs of ``key`` sent before ``record``, oldest first."""
    running, parked = get_sharing().holders(key)
    others = [r for r in registry.get_many([*running, *parked]) if r.id != record.id]
    return sorted(
        (r for r in others if not r.state.finished and r.created_at <= record.created_at),
        key=lambda r: r.created_at,
    )


def wait_reason(key: str, arrival: Arrival) -> str:
    """Why a job of ``key`` waits: its slots are all taken, its rate is spent, its fair queue's
    window is full, or other keys go first."""
    if arrival.max_running is not None and arrival.running >= arrival.max_running:
        return f"waiting for a slot of {key} ({arrival.running}/{arrival.max_running} running)"
    if arrival.rate:
        return f"waiting for the rate limit of {key} ({arrival.rate})"
    if arrival.full:
        return f"waiting for its turn in fair queue {arrival.full} (its window is full)"
    return f"waiting for its turn: {key} has older parked jobs"


def wait_reasons(records: list[JobRecord]) -> dict[str, str]:
    """Why each queued keyed job among ``records`` waits, if it does (parked): job id -> reason."""
    waiting = [r for r in records if r.state is JobState.QUEUED and key_of(r)]
    reasons: dict[str, str] = {}
    store = get_sharing()
    for key in sorted({key_of(r) or "" for r in waiting}):
        parked = set(store.holders(key)[1])
        use = store.uses([key])[0]
        arrival = Arrival(
            False,
            use.running,
            use.policy.get("max_running"),
            use.policy.get("rate"),
            use.policy.get("supersede"),
        )
        reasons.update(
            {
                r.id: wait_reason(
                    key, replace(arrival, full=r.queue if r.options["limit"].get("fair") else None)
                )
                for r in waiting
                if key_of(r) == key and r.id in parked
            }
        )
    return reasons
