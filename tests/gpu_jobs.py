"""A job type for the GPU pinning tests: reports the GPU its process sees, once its peers run too."""

from __future__ import annotations

import os
import time

import redis
from pydantic import BaseModel

from trainq import Job, job_type
from trainq.job.gpus import VISIBLE_DEVICES
from trainq.settings import get_settings


class Meet(BaseModel):
    """Wait at ``barrier`` until ``peers`` jobs (this one included) have arrived."""

    barrier: str
    peers: int = 2
    wait_s: float = 20.0


@job_type("gpu_probe", input=Meet, queue="training")
def gpu_probe(job: Job, meet: Meet) -> dict[str, object]:
    """Return this process's CUDA_VISIBLE_DEVICES after all peers started: proof they overlapped."""
    client = redis.Redis.from_url(get_settings().broker())
    client.rpush(meet.barrier, job.id)
    deadline = time.monotonic() + meet.wait_s
    while client.llen(meet.barrier) < meet.peers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {client.llen(meet.barrier)} of {meet.peers} peers arrived")
        time.sleep(0.02)
    return {"gpu": os.environ.get(VISIBLE_DEVICES), "pid": os.getpid(), "overlapped": True}
