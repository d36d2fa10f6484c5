"""Static schedules for the schedule tests (Beat loads it via TRAINQ_BEAT_SCHEDULE_MODULE)."""

from trainq.schedules import ScheduleSpec

beat_schedule = {
    "static-probe": ScheduleSpec(every="1s", type="probe", config={"seconds": 0.05}, priority=8),
    "static-solo": {"every": "1s", "type": "probe", "overlap": "skip"},  # a plain dict, as users write too
}
