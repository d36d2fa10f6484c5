"""Duration strings, retry backoff, environment expansion and command progress lines (no network)."""

from __future__ import annotations

import pytest

from trainq.errors import DurationError
from trainq.inputs.durations import format_duration, parse_duration
from trainq.job.command import parse_progress
from trainq.job.environment import expand, mask
from trainq.job.retry import Backoff, RetryPolicy, backoff_s, retries


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h 30m", 5400),
        ("4h", 14400),
        ("7d", 604800),
        ("2.5s", 2.5),
        ("30", 30),
        (12, 12),
    ],
)
def test_durations_parse(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10 parsecs", "1h and 3m", "-5", "m"])
def test_bad_durations_name_the_text(text: str) -> None:
    with pytest.raises(DurationError, match="duration"):
        parse_duration(text)


def test_exponential_backoff_doubles_and_caps() -> None:
    policy = RetryPolicy(base_s=1, max_s=5, jitter=False)
    assert [backoff_s(policy, n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    # and a policy allowing thousands of retries (a Python caller's or a Celery client's) stays capped
    assert backoff_s(RetryPolicy(max_retries=5000, max_s=600, jitter=False), 1100) == 600


def test_linear_and_fixed_backoff() -> None:
    assert [backoff_s(RetryPolicy(backoff=Backoff.LINEAR, base_s=2, jitter=False), n) for n in (1, 2, 3)] == [
        2,
        4,
        6,
    ]
    assert [backoff_s(RetryPolicy(backoff=Backoff.FIXED, base_s="3s", jitter=False), n) for n in (1, 5)] == [
        3,
        3,
    ]


def test_jitter_stays_within_half_to_full_delay() -> None:
    policy = RetryPolicy(base_s=4, jitter=True)
    waits = [backoff_s(policy, 2) for _ in range(200)]
    assert all(4 <= w <= 8 for w in waits)
    assert len(set(waits)) > 1


def test_environment_expands_references_and_reports_secrets() -> None:
    variables, secrets = expand({"KEY": "${TOKEN}", "MIX": "a-$TOKEN-b", "PLAIN": "x"}, {"TOKEN": "s3cr3t"})
    assert variables == {"KEY": "s3cr3t", "MIX": "a-s3cr3t-b", "PLAIN": "x"}
    assert secrets == ["s3cr3t"]
    assert mask("token is s3cr3t!", secrets) == "token is ***!"


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("trainq:progress 52/100 loss=0.287", (52, 100, {"loss": 0.287})),
        ("trainq:progress 3", (3, None, {})),
        ("trainq:progress 1/4 phase=warmup", (1, 4, {"phase": "warmup"})),
        ("epoch 3 done", None),
    ],
)
def test_command_progress_lines(line: str, parsed: object) -> None:
    assert parse_progress(line) == parsed


def test_retry_on_limits_which_exceptions_retry() -> None:
    anything = RetryPolicy()
    network = RetryPolicy(retry_on=("ConnectionError", "builtins.TimeoutError"))
    assert retries(anything, ValueError("x"))
    assert retries(network, ConnectionRefusedError())  # a subclass of ConnectionError
    assert retries(network, TimeoutError())
    assert not retries(network, ValueError("bad config"))


def test_long_durations_read_in_days() -> None:
    # given a week and a half; when formatted; then days and hours are shown
    assert format_duration(7 * 86400 + 3 * 3600 + 59) == "7d 3h"
    # and past a year, years and days
    assert format_duration(6 * 365 * 86400 + 40 * 86400 + 3600) == "6y 40d"
