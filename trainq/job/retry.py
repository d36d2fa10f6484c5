"""Retry policies: how many attempts a job gets and how long it waits between them."""

from __future__ import annotations

import random
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from trainq.inputs.durations import parse_duration


class Backoff(str, Enum):
    """How the delay grows between attempts."""

    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    FIXED = "fixed"


class RetryPolicy(BaseModel):
    """Retries for a job type or one job; durations accept ``90s`` style strings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_retries: int = 3
    backoff: Backoff = Backoff.EXPONENTIAL
    base_s: float = 2.0
    max_s: float = 600.0
    jitter: bool = True
    #: Exception class names (``TimeoutError``) or dotted paths (``requests.HTTPError``) that retry;
    #: empty means any exception. Validation errors and ``PermanentError`` never retry.
    retry_on: tuple[str, ...] = ()

    @field_validator("base_s", "max_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("max_retries")
    @classmethod
    def _non_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("max_retries must be >= 0")
        return value


def retries(policy: RetryPolicy, exc: BaseException) -> bool:
    """True if ``exc`` (or one of its base classes) is one the policy retries."""
    if not policy.retry_on:
        return True
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}
    names |= {c.__qualname__ for c in type(exc).__mro__}
    return any(name in names for name in policy.retry_on)


def backoff_s(policy: RetryPolicy, attempt: int) -> float:
    """Seconds to wait after failed ``attempt`` (1-based), capped at ``policy.max_s``.

    With jitter the wait is drawn uniformly from [delay/2, delay], which spreads a burst
    of failures without ever waiting longer than the policy says.
    """
    if policy.backoff is Backoff.EXPONENTIAL:
        # Capped exponent: past ~1,024 attempts 2 ** n no longer fits a float (OverflowError).
        delay = policy.base_s * 2.0 ** min(attempt - 1, 1000)
    elif policy.backoff is Backoff.LINEAR:
        delay = policy.base_s * attempt
    else:
        delay = policy.base_s
    delay = min(delay, policy.max_s)
    if policy.jitter:
        delay = random.uniform(delay / 2, delay)
    return delay
