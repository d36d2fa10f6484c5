"""Claims sent by the worker's main process, in the transaction that records a delivery as unacked.

On a Redis broker that is the registry's own server and db, a worker's main process receives each
message and writes kombu's unacked entry for it (``trainq.broker.transport.QoS``); the job's claim
goes in the same transaction, and the claimed record reaches the pool process in the message's
``trainq_claim`` header, so a job starts without a round trip of its own. The header is signed
with a secret the pool processes inherit: one sent by a client is dropped, never trusted.

Only a delivery that runs at once is claimed there: a JSON message Celery will decode, of a job type
of this app without a rate limit, with no ``eta`` (Celery holds those in a timer) or expiry, on a
worker that reserves one message per process. Every other delivery, and one whose claim was refused,
is claimed by the pool process as before.

A Redis that stalls as a claim is sent may run it and lose its answer: the transaction is sent again,
the same commands, until Redis answers or the lease ends (``within_lease``), and the claim sent again is
answered with the record its first try claimed (the claim's token is on it), so the job starts when
Redis answers again, not after its lease. Any other claim of the running job (a duplicate delivery,
here or elsewhere) is still refused.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import redis

from trainq.broker import transport
from trainq.job.leases import within_lease
from trainq.job.record import JobRecord
from trainq.settings import get_settings
from trainq.store.registry import Registry, get_registry

log = logging.getLogger("trainq.job.claims")

#: The message header that carries a claim from the main process to the pool process.
HEADER = "trainq_claim"

#: Made at import, in the main process before it forks its pool: only this worker can sign a claim.
_SECRET = os.urandom(16).hex()


def claim_in_main_process(hostname: str, job_types: Callable[[Any], bool]) -> None:
    """Send each delivery's claim with its unacked entry in this process (a worker's main process).

    ``job_types`` says whether a task name is a job type Celery runs as soon as it arrives (a trainq
    job type without a rate limit). The registry's scripts are loaded first, so a claim needs no
    round trip of its own.
    """
    registry = get_registry()
    registry.load_scripts()
    lease_s = get_settings().lease_s

    def claim(message: Any, pipe: Any) -> Callable[[Any], None] | None:
        headers = message.headers
        headers.pop(HEADER, None)  # a sender's is never trusted
        job_id, fence = headers.get("id"), headers.get("retries") or 0
        if not (
            isinstance(job_id, str)
            and type(fence) is int
            and job_types(headers.get("task"))
            and not headers.get("eta")
            and not headers.get("expires")
            # only what Celery surely decodes: one it refuses after the claim would leave the job
            # running, unrun, until its lease expires
            and message.content_type == "application/json"
            and "compression" not in headers
        ):
            return None
        registry.claim_on(pipe, job_id, fence, hostname, time.time() + lease_s)

        def claimed(reply: Any) -> None:
            if isinstance(reply, redis.exceptions.NoScriptError):
                registry.load_scripts()  # the server lost its scripts: the pool process claims this one
            elif isinstance(reply, Exception):
                log.warning("claim of %s failed in the main process: %s", job_id, reply)
            elif reply:
                headers[HEADER] = [_sign(reply), reply.decode()]

        return claimed

    transport.claim_deliveries(claim, lambda send: within_lease(send, lease_s))


def claimed(request: Any, registry: Registry, lease_until: float, fresh_s: float) -> JobRecord | None:
    """The record this delivery was claimed with in the worker's main process, or None (claim it here).

    A claim older than ``fresh_s`` (held in the main process, e.g. while a pool process was replaced)
    may have lost its lease to a recovery meanwhile: it holds only if its lease can be renewed on its
    fence. Otherwise the pool process's own claim finds the delivery stale.
    """
    value = getattr(request, HEADER, None)
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        return None
    signature, raw = value
    if not hmac.compare_digest(signature, _sign(raw.encode())):
        return None
    return _fresh(JobRecord.model_validate_json(raw), registry, lease_until, fresh_s)


def claim_here(
    registry: Registry, job_id: str, fence: int, worker: str, lease_s: float, fresh_s: float
) -> JobRecord | None:
    """Claim a delivery in the pool process (one the main process did not claim); the running record,
    or None when the delivery is stale. The claim is sent again while Redis does not answer, for up to
    the lease (``within_lease``), so a claim that landed unseen starts its job when Redis answers, not
    after its lease; one that took longer than ``fresh_s`` has its lease renewed before the job starts.
    """
    record = within_lease(registry.claiming(job_id, fence, worker, time.time() + lease_s), lease_s)
    return _fresh(record, registry, time.time() + lease_s, fresh_s) if record else None


def _fresh(record: JobRecord, registry: Registry, lease_until: float, fresh_s: float) -> JobRecord | None:
    """``record``, claimed more than ``fresh_s`` ago, holds only if its lease can be renewed on its fence
    (it may have run out, and the job been recovered, meanwhile)."""
    if time.time() - (record.started_at or 0) > fresh_s:
        return record if registry.update_running(record.id, record.fence, lease_until=lease_until) else None
    return record


def _sign(raw: bytes) -> str:
    return hmac.new(_SECRET.encode(), raw, "sha256").hexdigest()
