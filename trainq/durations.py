"""Human durations (``90s``, ``15m``, ``1h 30m``, ``4h``, ``7d``) as seconds."""

from __future__ import annotations

import re

from trainq.errors import DurationError

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``text``; a bare number is seconds. Raises DurationError naming the text."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise DurationError(f"duration must not be negative: {text}")
        return float(text)
    value = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = _PART.findall(value)
    if not parts or _PART.sub("", value).strip():
        raise DurationError(
            f"bad duration {text!r}: use numbers with units s, m, h, d (e.g. '90s', '1h 30m')"
        )
    return sum(float(n) * _UNITS[unit] for n, unit in parts)


def format_duration(seconds: float) -> str:
    """A short human form of ``seconds``: ``1h 2m``, ``3m 4s``, ``5.2s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"
