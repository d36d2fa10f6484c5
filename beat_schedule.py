"""Static schedules Celery Beat loads (placeholder until the schedules issue lands)."""

from typing import Any

beat_schedule: dict[str, Any] = {}
