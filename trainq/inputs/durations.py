"""Human durations (``90s``, ``15m``, ``1h 30m``, ``4h``, ``7d``) as seconds."""

from __future__ import annotations

import math
import re
import time
from datetime import datetime, tzinfo
from typing import Any

from trainq.errors import DurationError, InvalidInput
from trainq.inputs.limits import AT_PAST_MAX_S, MAX_DURATION_CHARS, MAX_DURATION_S

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_HINT = "use numbers with units s, m, h, d (e.g. '90s', '1h 30m')"


def parse_duration(text: str | float | int, *, positive: bool = False) -> float:
    """Seconds in ``text``; a bare number is seconds. Raises DurationError naming the text.

    The text is bounded (``MAX_DURATION_CHARS``) before any pattern runs, so parsing takes
    linear time; the result is finite, not negative, at most ``MAX_DURATION_S``, and above zero
    when ``positive`` (a timeout of 0, NaN or infinity would mean "no limit").
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        try:
            seconds = float(text)
        except OverflowError:
            seconds = math.inf
        shown = str(text) if isinstance(text, float) or seconds < MAX_DURATION_S else "a huge number"
    else:
        value = str(text).strip().lower()
        shown = repr(text)
        if len(value) > MAX_DURATION_CHARS:
            raise DurationError(f"bad duration {shown[:20]}...: longer than {MAX_DURATION_CHARS} characters")
        seconds = _seconds(value, shown)
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_DURATION_S:
        raise DurationError(
            f"duration must be a finite number of seconds from 0 to {MAX_DURATION_S:,}: {shown}"
        )
    if positive and seconds == 0:
        raise DurationError(f"duration must be above zero: {shown}")
    return seconds


def _seconds(value: str, shown: str) -> float:
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = _PART.findall(value)
    if not parts or _PART.sub("", value).strip():
        raise DurationError(f"bad duration {shown}: {_HINT}")
    return sum(float(n) * _UNITS[unit] for n, unit in parts)


def format_duration(seconds: float) -> str:
    """A short human form of ``seconds``: ``6y 40d``, ``7d 2h``, ``1h 2m``, ``3m 4s``, ``5.2s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days >= 365:
        return f"{days // 365}y {days % 365}d"
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def start_options(
    delay: str | None, at: str | None, names: tuple[str, str], naive: tzinfo | None = None
) -> dict[str, Any]:
    """A submit's ``countdown`` or ``eta`` from a delay or a start time (``names``: the two options as
    the caller knows them); raises InvalidInput for both: a job starts once."""
    if delay and at:
        raise InvalidInput(f"give {names[0]} or {names[1]}, not both: a job starts once")
    if delay:
        return {"countdown": parse_duration(delay)}
    return {"eta": parse_time(at, names[1], naive)} if at else {}


def parse_time(text: str, what: str, naive: tzinfo | None = None) -> datetime:
    """The time in ISO ``text`` (a time without a zone in ``naive``, else local), made aware; at most
    ``MAX_DURATION_S`` ahead, as a delay is, and at most ``AT_PAST_MAX_S`` past: an earlier start time
    would run the job now. Raises InvalidInput naming ``what`` (``--at``)."""
    try:
        at = datetime.fromisoformat(text)
        at = at if at.tzinfo else at.replace(tzinfo=naive) if naive else at.astimezone()
        ahead = at.timestamp() - time.time()
    except (ValueError, OverflowError):  # not ISO, or a year local time cannot hold
        raise InvalidInput(f"bad {what} {text[:40]!r}: use an ISO time such as 2026-12-01T02:00") from None
    if ahead > MAX_DURATION_S:
        raise InvalidInput(f"bad {what} {text[:40]!r}: at most {MAX_DURATION_S:,} seconds ahead")
    if ahead < -AT_PAST_MAX_S:
        raise InvalidInput(
            f"{what} {text[:40]} is {format_duration(-ahead)} ago: the job would run now; "
            f"give a time to come, or leave {what} out"
        )
    return at
