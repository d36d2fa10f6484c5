"""Static schedules: ``celery -A trainq beat`` loads ``beat_schedule`` from this module by name.

Each entry is a ``trainq.schedules.ScheduleSpec`` (or a plain dict of its fields): when it runs
(``cron`` with an optional ``timezone``, or ``every``) and what it submits (a job ``type`` with
its ``config`` and ``priority``, or a ``pipeline`` file). Beat validates them all when it starts
and refuses to start on a bad one. A schedule removed here is removed from Redis at the next
Beat start; point ``TRAINQ_BEAT_SCHEDULE_MODULE`` at another module to use other schedules.
"""

from trainq.schedules import ScheduleSpec

beat_schedule: dict[str, ScheduleSpec] = {
    # Refresh the prepared dataset every hour.
    "hourly-data": ScheduleSpec(every="1h", type="data", config={"dataset": "digits"}),
    # Retrain nightly at 02:00 Berlin time on the fresh data.
    "nightly-training": ScheduleSpec(
        cron="0 2 * * *",
        timezone="Europe/Berlin",
        type="training",
        config={"model": "sgd", "dataset": "digits", "epochs": 20},
        priority=7,
    ),
}
