"""Schedule rules without Redis: cron next runs in a time zone, and validation at create."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from trainq.errors import ScheduleError
from trainq.schedules import CronSchedule, Overlap, build_entry, overlap
from trainq.settings import Settings, celery_config

BERLIN = ZoneInfo("Europe/Berlin")


def next_runs(expr: str, start: datetime, count: int = 3, timezone: str = "Europe/Berlin") -> list[datetime]:
    cron, runs, at = CronSchedule(expr, timezone), [], start
    for _ in range(count):
        at = cron.next_run(at)
        runs.append(at)
    return runs


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        # hourly, from the middle of an hour
        (
            "0 * * * *",
            datetime(2026, 1, 14, 10, 20, tzinfo=BERLIN),
            [(1, 14, 11, 0), (1, 14, 12, 0), (1, 14, 13, 0)],
        ),
        # daily at 02:00, from a Saturday evening
        (
            "0 2 * * *",
            datetime(2026, 1, 10, 22, 0, tzinfo=BERLIN),
            [(1, 11, 2, 0), (1, 12, 2, 0), (1, 13, 2, 0)],
        ),
        # every 15 minutes, from exactly a quarter (strictly after it)
        (
            "*/15 * * * *",
            datetime(2026, 1, 14, 10, 15, tzinfo=BERLIN),
            [(1, 14, 10, 30), (1, 14, 10, 45), (1, 14, 11, 0)],
        ),
        # weekdays at 09:00, from Friday after 09:00: Monday, Tuesday, Wednesday
        (
            "0 9 * * 1-5",
            datetime(2026, 1, 16, 10, 0, tzinfo=BERLIN),
            [(1, 19, 9, 0), (1, 20, 9, 0), (1, 21, 9, 0)],
        ),
    ],
)
def test_cron_next_runs_in_timezone(expr: str, start: datetime, expected: list[tuple[int, ...]]) -> None:
    runs = next_runs(expr, start)
    assert [(r.month, r.day, r.hour, r.minute) for r in runs] == expected
    assert all(r.astimezone(BERLIN).utcoffset() == timedelta(hours=1) for r in runs)


def test_daily_0200_follows_daylight_saving_in_its_zone() -> None:
    # given 02:00 Berlin: 01:00 UTC in winter, 00:00 UTC in summer
    winter = next_runs("0 2 * * *", datetime(2026, 1, 10, 12, 0, tzinfo=BERLIN), 1)[0]
    summer = next_runs("0 2 * * *", datetime(2026, 7, 10, 12, 0, tzinfo=BERLIN), 1)[0]
    assert winter.astimezone(ZoneInfo("UTC")).hour == 1
    assert summer.astimezone(ZoneInfo("UTC")).hour == 0


@pytest.mark.parametrize(
    ("expr", "runs_in_the_repeated_hour"),
    [
        ("0 2 * * *", 1),
        ("30 2 * * *", 1),
        ("@daily", 0),
        ("0 */2 * * *", 2),
        ("*/30 * * * *", 4),
        ("@hourly", 2),
    ],
)
def test_clocks_going_back_run_a_fixed_time_once_and_a_clock_rule_by_the_clock(
    expr: str, runs_in_the_repeated_hour: int
) -> None:
    # given the night Berlin's clocks go back (2026-10-25: 03:00 CEST is 02:00 CET again), 00:00-02:00 UTC
    start = datetime(2026, 10, 24, 22, 0, tzinfo=ZoneInfo("UTC"))
    runs = [r.astimezone(ZoneInfo("UTC")) for r in next_runs(expr, start, 12)]
    night = [r for r in runs if r < datetime(2026, 10, 25, 2, 0, tzinfo=ZoneInfo("UTC"))]
    # then 02:00-02:59 local, which happens twice, holds a fixed time once, as cron does
    repeated = [r for r in night if r.astimezone(BERLIN).hour == 2]
    assert len(repeated) == runs_in_the_repeated_hour
    assert len(runs) == len(set(runs)) and runs == sorted(runs)


def test_a_daily_rule_runs_once_a_day_across_the_clocks_going_back() -> None:
    days = [
        r.astimezone(BERLIN).date() for r in next_runs("0 2 * * *", datetime(2026, 10, 20, tzinfo=BERLIN), 10)
    ]
    assert len(days) == len(set(days)) == 10


def test_same_expression_differs_by_zone() -> None:
    start = datetime(2026, 1, 14, 0, 0, tzinfo=ZoneInfo("UTC"))
    utc = next_runs("0 2 * * *", start, 1, "UTC")[0]
    tokyo = next_runs("0 2 * * *", start, 1, "Asia/Tokyo")[0]
    # then 02:00 UTC the same day, and 02:00 in Tokyo the next day (17:00 UTC)
    assert (utc.day, utc.hour) == (14, 2)
    assert (tokyo.astimezone(ZoneInfo("UTC")).day, tokyo.astimezone(ZoneInfo("UTC")).hour) == (14, 17)


def test_cron_schedule_is_due_once_overdue() -> None:
    # given a schedule whose clock reads 10:00:30 and whose last run was 09:00
    now = datetime(2026, 1, 14, 10, 0, 30, tzinfo=BERLIN)
    cron = CronSchedule("0 * * * *", "Europe/Berlin", nowfun=lambda: now)
    due, next_s = cron.is_due(datetime(2026, 1, 14, 9, 0, tzinfo=BERLIN))
    assert due and next_s == pytest.approx(3570)
    due, next_s = cron.is_due(datetime(2026, 1, 14, 10, 0, 30, tzinfo=BERLIN))
    assert not due and next_s == pytest.approx(3570)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"cron": "61 * * * *", "type": "probe"}, "bad cron expression '61 * * * *'"),
        ({"cron": "0 2 * *", "type": "probe"}, "bad cron expression"),
        ({"cron": "0 0 2 * * *", "type": "probe"}, "use 5 fields"),
        ({"every": "10 parsecs", "type": "probe"}, "bad duration '10 parsecs'"),
        ({"every": "0s", "type": "probe"}, "every must be at least 1s, got '0s'"),
        ({"every": "0.001s", "type": "probe"}, "every must be at least 1s, got '0.001s'"),
        ({"every": 0.5, "type": "probe"}, "every must be at least 1s, got 0.5"),
        ({"every": "1m", "cron": "* * * * *", "type": "probe"}, "exactly one of cron or every"),
        ({"type": "probe"}, "exactly one of cron or every"),
        ({"every": "1m", "timezone": "Europe/Berlin", "type": "probe"}, "timezone applies to cron"),
        (
            {"cron": "0 2 * * *", "timezone": "Mars/Olympus", "type": "probe"},
            "unknown timezone 'Mars/Olympus'",
        ),
        *(
            ({"cron": "0 2 * * *", "timezone": zone, "type": "probe"}, f"unknown timezone {zone!r}")
            for zone in ("localtime", "posixrules", "Factory", "utc", "UTC+2", "/etc/localtime")
        ),
        ({"every": "1m"}, "exactly one of type"),
        ({"every": "1m", "type": "no-such-type"}, "unknown job type 'no-such-type'"),
        (
            {"every": "1m", "type": "probe", "config": {"seconds": "soon"}},
            "invalid payload for job type 'probe': seconds",
        ),
        ({"every": "1m", "type": "probe", "priority": 12}, "priority"),
        ({"every": "1m", "type": "probe", "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"every": "1m", "type": "probe", "overlap": "never"}, "overlap: Input should be 'allow' or 'skip'"),
    ],
)
def test_bad_definitions_are_refused_with_the_problem_named(spec: dict[str, object], problem: str) -> None:
    with pytest.raises(ScheduleError) as error:
        build_entry("nightly", spec)
    assert str(error.value).startswith("schedule 'nightly': ")
    assert problem in str(error.value)


def test_bad_name_is_refused() -> None:
    with pytest.raises(ScheduleError, match="names are"):
        build_entry("two words", {"every": "1m", "type": "probe"})


def test_job_schedule_runs_are_tagged_with_the_schedule_name() -> None:
    entry = build_entry(
        "hourly-data", {"every": "1h", "type": "probe", "config": {"seconds": 1}, "priority": 7}
    )
    assert entry.task == "trainq.probe"
    assert entry.kwargs == {"seconds": 1}
    assert entry.options == {"tags": {"schedule": "hourly-data"}, "job_name": "hourly-data", "priority": 7}
    assert entry.schedule.run_every == timedelta(hours=1)


def test_beats_lock_lasts_30_s_by_default_and_must_outlast_a_tick() -> None:
    # given the default settings, then Beat's lock lasts 30 s (a waiting Beat's longest wait to take over)
    redis_url = "redis://127.0.0.1:6379/0"
    assert celery_config(Settings(broker_url=redis_url))["redbeat_lock_timeout"] == 30
    # and a lock given in fractions is renewed by whole seconds, never shorter than asked
    fractional = celery_config(Settings(broker_url=redis_url, beat_interval_s=1, beat_lock_s=4.2))
    assert fractional["redbeat_lock_timeout"] == 5
    # and a lock no longer than a tick (it would lapse between two renewals) is refused naming the tick
    with pytest.raises(ValueError, match=r"longer than TRAINQ_BEAT_INTERVAL_S \(5 s\)"):
        Settings(beat_lock_s=5)
    assert Settings(beat_interval_s=1, beat_lock_s=2).beat_lock_s == 2


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC", "GMT", "Europe/Berlin", "America/New_York", "US/Eastern"])
def test_iana_zone_names_are_accepted(zone: str) -> None:
    entry = build_entry("nightly", {"cron": "0 2 * * *", "timezone": zone, "type": "probe"})
    assert entry.schedule.timezone == zone


@pytest.mark.parametrize("module", ["../etc", ".x", "x.", "a..b", "my-schedules", "a/b", " x"])
def test_a_schedule_module_that_is_no_dotted_module_name_is_an_invalid_setting(module: str) -> None:
    with pytest.raises(ValueError, match="beat_schedule_module"):
        Settings(beat_schedule_module=module)


@pytest.mark.parametrize("module", ["", "beat_schedule", "myproject.schedules", "tests.beat_static"])
def test_a_dotted_module_name_or_none_is_a_schedule_module(module: str) -> None:
    assert Settings(beat_schedule_module=module).beat_schedule_module == module


def test_overlap_skip_is_stored_with_the_entry_and_never_sent_with_its_job() -> None:
    # given a job schedule and a pipeline schedule that skip overlapping runs, and one left as before
    job = build_entry("solo", {"every": "1h", "type": "probe", "overlap": "skip"})
    inline = {"pipeline_id": "p", "jobs": [{"job_id": "a", "type": "probe"}]}
    pipeline = build_entry("p", {"every": "1h", "pipeline": inline, "overlap": "skip"})
    default = build_entry("many", {"every": "1h", "type": "probe"})
    # then the skip entries say so, and the default entry's options are what the release before stored
    assert overlap(job) is Overlap.SKIP and overlap(pipeline) is Overlap.SKIP
    assert overlap(default) is Overlap.ALLOW
    assert default.options == {"tags": {"schedule": "many"}, "job_name": "many"}
