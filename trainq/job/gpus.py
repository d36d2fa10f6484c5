"""GPU pinning: with ``TRAINQ_GPUS=0,1`` each process of a worker pool gets a GPU of its own.

A prefork child sets ``CUDA_VISIBLE_DEVICES`` from its pool index when it starts. billiard keeps
the indexes of live children distinct (0 .. concurrency-1) and a replacement child takes the
index of the one it replaces, so two jobs never run on one GPU at the same time. A worker that
would need more GPUs than listed refuses to start instead of sharing one.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from billiard.process import current_process
from celery import signals

from trainq.errors import ConfigError
from trainq.settings import get_settings

log = logging.getLogger("trainq.job.gpus")
VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
PREFORK_POOL = "prefork"


def parse_gpus(value: str | None) -> list[str]:
    """GPU ids from ``TRAINQ_GPUS`` (indexes or UUIDs, comma-separated); empty when unset."""
    if not value or not value.strip():
        return []
    gpus = [part.strip() for part in value.split(",")]
    if "" in gpus:
        raise ConfigError(f"TRAINQ_GPUS={value!r} has an empty entry; expected e.g. '0,1'")
    if len(set(gpus)) != len(gpus):
        raise ConfigError(f"TRAINQ_GPUS={value!r} lists a GPU twice; each process needs its own")
    return gpus


def check_pool(gpus: list[str], processes: int, pool: str) -> None:
    """Raise ConfigError unless a ``pool`` of ``processes`` can give each process its own GPU."""
    if not gpus:
        return
    if pool != PREFORK_POOL:
        raise ConfigError(f"TRAINQ_GPUS needs the prefork pool (one process per GPU), not {pool!r}")
    if processes > len(gpus):
        raise ConfigError(
            f"TRAINQ_GPUS lists {len(gpus)} GPU(s) ({','.join(gpus)}) but the pool has {processes} "
            f"processes; lower the concurrency (-c {len(gpus)}) or list more GPUs"
        )


def gpu_for(index: int, gpus: list[str]) -> str:
    """The GPU of the pool process at ``index`` (0-based)."""
    return gpus[index]


@signals.celeryd_after_setup.connect
def _refuse_shared_gpus(sender: str, instance: Any, **_: Any) -> None:
    """Stop the worker at start-up when its processes cannot each have one GPU."""
    gpus = parse_gpus(get_settings().gpus)
    pool = getattr(instance.pool_cls, "__module__", str(instance.pool_cls)).rsplit(".", 1)[-1]
    processes = max(instance.concurrency or 0, getattr(instance, "max_concurrency", None) or 0)
    try:
        check_pool(gpus, processes, pool)
    except ConfigError as error:
        log.critical("%s", error)
        # Celery logs and swallows exceptions from signal handlers; SystemExit is not swallowed.
        raise SystemExit(f"error: {error}") from None
    if gpus:
        log.info("worker %s pins its %d process(es) to GPUs %s", sender, processes, ",".join(gpus))


@signals.worker_process_init.connect
def _pin_gpu(**_: Any) -> None:
    """In a new pool process, make only its own GPU visible to CUDA (and to commands it runs)."""
    gpus = parse_gpus(get_settings().gpus)
    if not gpus:
        return
    gpu = gpu_for(current_process().index, gpus)
    os.environ[VISIBLE_DEVICES] = gpu
    log.info("pool process %s uses GPU %s", current_process().index, gpu)
