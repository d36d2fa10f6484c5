"""Job types used by the tests; each keeps an independent record of its attempts in Redis."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time

import redis
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import BaseModel, SecretStr

from trainq import Job, PermanentError, RetryPolicy, job_type
from trainq.settings import get_settings, redis_py_url


def attempts_key(job_id: str) -> str:
    """Redis list where a test job notes each attempt as ``start:end`` times (independent of trainq)."""
    return f"test:attempts:{job_id}"


def _attempts() -> redis.Redis:
    """Where attempts are noted: ``TEST_ATTEMPTS_URL`` (a Redis apart from a failing one) or the registry."""
    return redis.Redis.from_url(
        os.environ.get("TEST_ATTEMPTS_URL") or redis_py_url(get_settings().registry())
    )


def _note(job: Job, event: str) -> None:
    client = _attempts()
    client.rpush(attempts_key(job.id), f"{event}:{job.attempt}:{time.time()}:{os.getpid()}")


def _sleep(seconds: float, ignore_soft_timeout: bool) -> None:
    """Sleep ``seconds``; with ``ignore_soft_timeout`` swallow the soft time limit wherever it lands."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.01)
        except SoftTimeLimitExceeded:
            if not ignore_soft_timeout:
                raise


class Sleep(BaseModel):
    seconds: float = 0.0
    fail_times: int = 0
    permanent: bool = False
    kill_self: bool = False
    kill_times: int = 0
    ignore_soft_timeout: bool = False
    steps: int = 0
    fault_key: str | None = None
    release_key: str | None = None


#: Longest a probe waits for its ``release_key``, so a test that never sets it cannot hang a worker.
RELEASE_WAIT_S = 60.0


def _wait_released(key: str) -> None:
    """Block until ``key`` exists in the registry's Redis (a test sets it to let the job end)."""
    client = redis.Redis.from_url(redis_py_url(get_settings().registry()))
    deadline = time.monotonic() + RELEASE_WAIT_S
    while not client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.01)


@job_type("probe", input=Sleep, queue="probe", retry=RetryPolicy(max_retries=3, base_s=0.2, jitter=False))
def probe(job: Job, config: Sleep) -> dict[str, object]:
    """Sleep, optionally failing the first ``fail_times`` attempts or killing its own process (every
    attempt, or the first ``kill_times``); after those a run waits for its ``release_key`` first, then
    fails while its ``fault_key`` is set."""
    _note(job, "start")
    if config.kill_self or job.attempt <= config.kill_times:
        os.kill(os.getpid(), signal.SIGKILL)
    if job.attempt <= config.fail_times:
        if config.permanent:
            raise PermanentError("permanent failure")
        raise RuntimeError(f"planned failure on attempt {job.attempt}")
    if config.release_key:
        _wait_released(config.release_key)
    if config.fault_key and redis.Redis.from_url(redis_py_url(get_settings().registry())).exists(
        config.fault_key
    ):
        raise RuntimeError(f"fault {config.fault_key} is present")
    steps = max(config.steps, 1)
    for step in range(1, steps + 1):
        _sleep(config.seconds / steps, config.ignore_soft_timeout)
        if config.steps:
            job.progress(step, steps, loss=1.0 / step)
    print(f"probe done after {config.seconds}s")
    _note(job, "end")
    return {"attempt": job.attempt, "pid": os.getpid()}


@job_type("fair_probe", input=Sleep, queue="fair", fair=True)
def fair_probe(job: Job, config: Sleep) -> dict[str, object]:
    """Sleep; its type is fair, so jobs of different keys start in turns."""
    _note(job, "start")
    _sleep(config.seconds, config.ignore_soft_timeout)
    _note(job, "end")
    return {"pid": os.getpid()}


class Credentials(BaseModel):
    user: str = "ci"
    token: SecretStr


@job_type("secret", input=Credentials, queue="probe")
def use_secret(job: Job, config: Credentials) -> dict[str, object]:
    """Proves the handler got the real token (its digest) without storing or printing it."""
    return {
        "user": config.user,
        "token_sha256": hashlib.sha256(config.token.get_secret_value().encode()).hexdigest(),
    }


class Variable(BaseModel):
    name: str
    fail: bool = False


@job_type("environ", input=Variable, queue="probe")
def echo_variable(job: Job, config: Variable) -> dict[str, object]:
    """Hands a variable of its ``environment`` to every surface: progress, output, logging, result, error."""
    value = os.environ[config.name]
    job.progress(1, 2, value=value)
    print(f"{config.name}={value}")
    logging.getLogger("tests.environ").warning("%s is %s", config.name, value)
    if config.fail:
        raise RuntimeError(f"rejected {value}")
    return {"value": value}


class Message(BaseModel):
    text: str


@job_type("log_levels", input=Message, queue="probe")
def log_levels(job: Job, config: Message) -> None:
    """Logs ``text`` at DEBUG, INFO and WARNING, to show which levels reach the job's log and the worker's."""
    for level in (logging.DEBUG, logging.INFO, logging.WARNING):
        logging.getLogger("tests.levels").log(level, "%s at %s", config.text, logging.getLevelName(level))
