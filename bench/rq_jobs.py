"""RQ's side: plain functions RQ workers import by dotted path."""

from __future__ import annotations

from bench import bodies


def noop() -> None:
    """No-op."""
    bodies.noop()


def stamp(key: str, name: str = "") -> None:
    """Record this job's start and end times."""
    bodies.stamp(key, name)
