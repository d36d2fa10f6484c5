"""Schedules against real Redis, real ``celery beat`` and real workers: runs, lifecycle, lock, statics."""

from __future__ import annotations

import itertools
import json
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.clients.test_cli_console import trainq
from tests.fixtures import ROOT, Beats, Process, Workers, run_cli, wait_for
from tests.integration import test_web
from trainq import JobRecord, JobState, get_registry
from trainq.cli import main
from trainq.errors import ScheduleError
from trainq.pipelines.runs import get_runs
from trainq.schedules import create, delete, entries, get, info, run_now, submit_run

web, api = test_web.web, test_web.api  # trainq web and a client logged in to it, for the HTTP tests


def runs(name: str) -> list[JobRecord]:
    """The jobs schedule ``name`` submitted, oldest first."""
    return sorted(get_registry().list(tag=f"schedule={name}", limit=500), key=lambda r: r.created_at)


def succeeded(name: str) -> list[JobRecord]:
    return [r for r in runs(name) if r.state is JobState.SUCCEEDED]


def cli(*args: str) -> Result:
    """Run the real ``trainq`` CLI in this process (no interpreter start-up per call)."""
    return CliRunner().invoke(main, list(args))


def cli_ok(*args: str) -> str:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def listed() -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in json.loads(cli_ok("schedule", "list", "--json"))}


def test_every_two_seconds_runs_then_disable_enable_delete(workers: Workers, beats: Beats) -> None:
    # given a probe pool, an every-2s schedule and a running Beat
    workers.start("probe")
    cli_ok("schedule", "create", "tick", "--every", "2s", "--type", "probe", "--config", '{"seconds": 0.05}')
    beats.start()
    # then its jobs run, as ordinary jobs tagged with the schedule, about 2 s apart
    wait_for(lambda: len(succeeded("tick")) >= 2, 20, message="two scheduled jobs done")
    first, second = succeeded("tick")[:2]
    assert first.name == "tick" and first.tags == {"schedule": "tick"} and first.type == "probe"
    assert 1.5 < second.created_at - first.created_at < 3.5
    listed_ids = {r["id"] for r in json.loads(cli_ok("list", "--tag", "schedule=tick", "--json"))}
    assert {first.id, second.id} <= listed_ids

    # when it is disabled, no new job appears while another schedule keeps running
    cli_ok("schedule", "disable", "tick")
    disabled_at = time.time()
    create("witness", {"every": "1s", "type": "probe"})
    wait_for(lambda: len(runs("witness")) >= 3, 20, message="witness ran three times")
    assert not [r for r in runs("tick") if r.created_at > disabled_at + 1]
    shown = info(get("tick"))
    assert not shown.enabled and shown.next_run_at is None

    # when it is enabled again, it resumes
    before = len(runs("tick"))
    cli_ok("schedule", "enable", "tick")
    wait_for(lambda: len(runs("tick")) > before, 15, message="tick resumed")

    # when it is deleted, it is gone and submits nothing more
    cli_ok("schedule", "delete", "tick")
    deleted_at, witnessed = time.time(), len(runs("witness"))
    wait_for(lambda: len(runs("witness")) >= witnessed + 3, 20, message="witness ran three more times")
    assert not [r for r in runs("tick") if r.created_at > deleted_at + 1]
    assert [e.name for e in entries()] == ["witness"]
    with pytest.raises(ScheduleError, match="schedule 'tick': no such schedule"):
        run_now("tick")


def test_schedule_created_while_beat_runs_is_picked_up(beats: Beats) -> None:
    # given a Beat running with no schedules
    beat = beats.start()
    # when a schedule is created
    create("late", {"every": "1s", "type": "probe", "priority": 9})
    # then the same Beat submits its runs, without a restart
    wait_for(lambda: runs("late"), 20, message="job of the new schedule submitted")
    assert runs("late")[0].priority == 9
    assert "Sending due task late" in beat.output()


def test_two_beats_do_not_double_submit(beats: Beats) -> None:
    # given an every-2s schedule and two Beat processes started for it
    create("pair", {"every": "2s", "type": "probe"})
    first = beats.start()
    second = beats.start(lock=False)
    # when they run side by side for about 10 s
    wait_for(lambda: len(runs("pair")) >= 5, 20, message="five submissions")
    # then each due time was submitted once: one Beat holds the lock, the other waits
    created = [r.created_at for r in runs("pair")]
    assert all(later - earlier > 1.5 for earlier, later in itertools.pairwise(created)), created
    assert first.alive() and second.alive()
    assert "Sending due task pair" in first.output()
    assert "Acquired lock" not in second.output() and "Sending due task" not in second.output()


def test_static_schedule_in_module_fires(beats: Beats) -> None:
    # given Beat pointed at a module of static schedules
    beats.start(env={"TRAINQ_BEAT_SCHEDULE_MODULE": "tests.beat_static"})
    # then its schedule submits jobs, and is listed as static
    wait_for(lambda: runs("static-probe"), 20, message="static schedule's job submitted")
    assert runs("static-probe")[0].priority == 8
    assert listed()["static-probe"]["static"] is True
    # and its skip schedule, whose first job no worker takes, submits no second one while it waits
    wait_for(lambda: listed()["static-solo"]["skipped"] >= 2, 20, message="static skip schedule skipped")
    assert len(runs("static-solo")) == 1 and listed()["static-solo"]["overlap"] == "skip"


def _beat(tmp_path: Path, module: str, cwd: Path = ROOT) -> Process:
    """A Beat of static schedules module ``module``, started in ``cwd``; the checkout is on its path (the
    tests' job types come from it), ``cwd`` only as Beat's working directory."""
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "trainq",
        "beat",
        "-l",
        "info",
        "-s",
        str(tmp_path / "beat"),
    ]
    env = {"TRAINQ_BEAT_INTERVAL_S": "1", "TRAINQ_BEAT_SCHEDULE_MODULE": module, "PYTHONPATH": str(ROOT)}
    return Process(args, tmp_path / f"beat-{module.replace('/', '_')}.log", env, cwd=cwd)


def test_beat_refuses_to_start_on_a_bad_static_schedule(tmp_path: Path, redis_client: Any) -> None:
    # given a static schedule module with a bad cron expression, in Beat's working directory
    (tmp_path / "bad_statics.py").write_text(
        'beat_schedule = {"broken": {"cron": "0 25 * * *", "type": "probe"}}'
    )
    beat = _beat(tmp_path, "bad_statics", cwd=tmp_path)
    try:
        # then Beat exits 2 with one line naming the schedule and the problem, and stores nothing
        wait_for(lambda: not beat.alive(), 30, message="beat exited")
        assert beat.popen.returncode == 2, beat.output()
        (problem,) = [line for line in beat.output().splitlines() if "schedule 'broken'" in line]
        assert problem.startswith("error: schedule 'broken': bad cron expression '0 25 * * *'")
        assert "Traceback" not in beat.output() and "WARNING" not in beat.output()
        assert entries() == []
    finally:
        beat.stop()


def test_static_schedules_are_found_in_beats_working_directory_and_kept_when_it_is_not_there(
    tmp_path: Path, redis_client: Any
) -> None:
    # given a static schedules module in a project directory, and Beat started there as users do
    project = tmp_path / "project"
    project.mkdir()
    (project / "my_schedules.py").write_text('beat_schedule = {"mine": {"every": "1h", "type": "probe"}}')
    beat = _beat(tmp_path, "my_schedules", cwd=project)
    try:
        # then its schedule is installed, as static
        wait_for(lambda: "mine" in listed(), 30, message="static schedule installed")
        assert listed()["mine"]["static"] is True
    finally:
        beat.stop()
    # when Beat starts where the module is not found
    elsewhere = _beat(tmp_path, "my_schedules", cwd=tmp_path)
    try:
        # then it exits 2 naming the setting, and the schedule it installed before is kept
        wait_for(lambda: not elsewhere.alive(), 30, message="beat exited")
        assert elsewhere.popen.returncode == 2, elsewhere.output()
        assert (
            "error: invalid setting TRAINQ_BEAT_SCHEDULE_MODULE: no module named 'my_schedules'"
            in elsewhere.output()
        )
        assert "Traceback" not in elsewhere.output()
        assert listed()["mine"]["static"] is True
    finally:
        elsewhere.stop()


@pytest.mark.parametrize(("catch_up", "expected"), [("true", 1), ("false", 0)])
def test_missed_runs_are_caught_up_at_most_once(beats: Beats, catch_up: str, expected: int) -> None:
    # given an hourly schedule that last ran 5 h ago (Beat was down for four due times)
    created = create("hourly", {"every": "1h", "type": "probe"}).last_run_at
    get("hourly").reschedule(last_run_at=created - timedelta(hours=5))
    # when Beat starts and handles it (its last run time moves to now, by a run or a skip)
    beat = beats.start(env={"TRAINQ_SCHEDULE_CATCH_UP": catch_up})

    def handled() -> bool:
        return bool(get("hourly").last_run_at > created and len(runs("hourly")) >= expected)

    wait_for(handled, 20, message="overdue schedule handled")
    # then the missed runs are submitted once (catch-up on) or not at all (off); next is in ~1 h
    assert len(runs("hourly")) == expected
    assert ("schedule hourly: skipping the run due" in beat.output()) is (expected == 0)
    next_run_at = listed()["hourly"]["next_run_at"]
    assert 3500 < next_run_at - time.time() <= 3600


def test_pipeline_schedule_starts_runs_that_finish(workers: Workers, beats: Beats, tmp_path: Path) -> None:
    # given a two-job pipeline file, a probe pool, and a schedule that starts it every 2 s
    pipeline = tmp_path / "etl.json"
    jobs = [
        {"job_id": "extract", "type": "probe"},
        {"job_id": "load", "type": "probe", "depends_on": ["extract"]},
    ]
    pipeline.write_text(json.dumps({"pipeline_id": "etl", "jobs": jobs}))
    workers.start("probe")
    cli_ok("schedule", "create", "etl-nightly", "--every", "2s", "--pipeline", str(pipeline))
    # when Beat runs it
    beats.start()
    # then pipeline runs start and finish, and the schedule shows the last one
    wait_for(lambda: any(r.state == "succeeded" for r in get_runs().recent()), 20, message="a run succeeded")
    shown = listed()["etl-nightly"]
    assert shown["pipeline"] == str(pipeline) and shown["type"] is None
    assert shown["last_run_id"] in {r.id for r in get_runs().recent()}
    # and the jobs of each run are found by the schedule's tag, as a job schedule's are
    done = next(r for r in get_runs().recent() if r.state == "succeeded")
    tagged = json.loads(trainq(tmp_path, "list", "--tag", "schedule=etl-nightly", "--json").stdout)
    assert {f"{done.id}.extract", f"{done.id}.load"} <= {j["id"] for j in tagged}
    assert all(j["tags"] == {"pipeline": "etl", "schedule": "etl-nightly"} for j in tagged)


def test_a_pipeline_file_made_invalid_or_removed_is_recorded_and_logged_in_one_line(
    beats: Beats, tmp_path: Path
) -> None:
    # given Beat running an every-1s pipeline schedule and an every-1s job schedule, made from the shell
    pipeline = tmp_path / "sp.yaml"
    pipeline.write_text('pipeline_id: sp\njobs:\n  - job_id: a\n    command: "echo sp"\n')
    for args in (["sp", "--pipeline", "sp.yaml"], ["other", "--type", "probe"]):
        made = trainq(tmp_path, "schedule", "create", *args, "--every", "1s")
        assert made.returncode == 0, made.stderr
    beat = beats.start()

    def shown() -> dict[str, dict[str, Any]]:
        listed = trainq(tmp_path, "schedule", "list", "--json")
        return {s["name"]: s for s in json.loads(listed.stdout)}

    wait_for(lambda: shown()["sp"]["last_run_id"], 20, message="a good run of sp")
    # when the file is edited into an invalid pipeline
    pipeline.write_text(pipeline.read_text() + "    depends_on: [zzz]\n")
    # then the schedule records the failed run, the list shows it, and Beat logs it in one line
    problem = "depends on unknown job 'zzz'"
    failed = wait_for(lambda: problem in (shown()["sp"]["last_error"] or "") and shown()["sp"], 20)
    assert failed["last_error_at"] > failed["last_run_at"]
    table = trainq(tmp_path, "schedule", "list")
    assert "failed " in table.stdout and "zzz" in table.stdout, table.stdout
    wait_for(lambda: "schedule sp: run not submitted: invalid pipeline" in beat.output(), 10)
    assert "Traceback" not in beat.output()
    # and Beat keeps running the other schedule
    before = shown()["other"]["last_run_id"]
    wait_for(lambda: shown()["other"]["last_run_id"] != before, 10, message="another run of other")
    # when the file is removed, then that is recorded the same way
    pipeline.unlink()
    wait_for(lambda: "cannot read pipeline file" in (shown()["sp"]["last_error"] or ""), 20)
    assert "Traceback" not in beat.output()
    # when the file is good again, then the next run is submitted and the error is cleared
    pipeline.write_text('pipeline_id: sp\njobs:\n  - job_id: a\n    command: "echo sp"\n')
    wait_for(lambda: shown()["sp"]["last_error"] is None, 20, message="sp runs again")


def test_run_now_submits_once_and_list_shows_last_and_next_run(registry: Any) -> None:
    # given a nightly cron schedule in Berlin time
    cli_ok(
        "schedule",
        "create",
        "nightly",
        "--cron",
        "0 2 * * *",
        "--timezone",
        "Europe/Berlin",
        "--type",
        "probe",
        "--config",
        '{"seconds": 1}',
    )
    # when it is run now (from a separate `python -m trainq` process)
    result = run_cli("schedule", "run", "nightly")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    # then one ordinary job was submitted, and the list shows it as the last run
    record = registry.get(job_id)
    assert record.state is JobState.QUEUED and record.payload["seconds"] == 1
    assert record.tags == {"schedule": "nightly"}
    shown = listed()["nightly"]
    assert shown["last_run_id"] == job_id and shown["when"] == "cron 0 2 * * * (Europe/Berlin)"
    next_run = shown["next_run_at"]
    assert 0 < next_run - time.time() <= 86400
    assert time.strftime("%H:%M", time.gmtime(next_run)) in ("00:00", "01:00")  # 02:00 CEST / CET


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 25 * * *", "--type", "probe"], "bad cron expression '0 25 * * *'"),
        (["--cron", "0 0 30 2 *", "--type", "probe"], "cron expression '0 0 30 2 *' never matches a date"),
        (["--every", "soon", "--type", "probe"], "bad duration 'soon'"),
        (["--every", "1m", "--type", "trainning"], "unknown job type 'trainning'"),
        (
            ["--every", "1m", "--type", "probe", "--config", '{"seconds": [1]}'],
            "invalid payload for job type 'probe'",
        ),
        (["--every", "1m"], "exactly one of type"),
        (
            ["--every", "1m", "--pipeline", str(ROOT / "examples" / "invalid-pipeline.json")],
            "invalid pipeline",
        ),
        (["--every", "1m", "--pipeline", "no/such/pipeline.yaml"], "cannot read pipeline file"),
    ],
)
def test_create_refuses_bad_input_with_exit_2(registry: Any, args: list[str], message: str) -> None:
    result = cli("schedule", "create", "bad", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: schedule 'bad': ") and message in result.stderr
    assert entries() == []


def test_create_refuses_an_existing_name(registry: Any) -> None:
    create("twice", {"every": "1m", "type": "probe", "config": {"seconds": 1}})
    result = run_cli("schedule", "create", "twice", "--every", "5m", "--type", "probe")
    assert result.returncode == 2 and "schedule 'twice': already exists" in result.stderr
    assert get("twice").schedule.seconds == 60


def test_a_deleted_name_can_be_reused_with_fresh_history(registry: Any) -> None:
    # given a schedule deleted while a Beat held a loaded copy, which then ran it once more
    stale = create("reuse", {"every": "1m", "type": "probe"})
    delete("reuse")
    submit_run(stale)
    # when the name is created again
    create("reuse", {"every": "5m", "type": "probe"})
    # then it is a new schedule with no run history
    shown = info(get("reuse"))
    assert shown.every_s == 300 and shown.last_run_id is None


def test_list_masks_a_schedules_secret_config_fields_as_the_web_does(
    tmp_path: Path, redis_client: Any
) -> None:
    # given a schedule of a job type whose token is a SecretStr
    token = "T0PSECRET-sched"
    made = trainq(
        tmp_path,
        "schedule",
        "create",
        "up1",
        "--every",
        "1h",
        "--type",
        "secret",
        "--config",
        json.dumps({"token": token}),
    )
    assert made.returncode == 0, made.stderr
    # when it is listed, as a table and as JSON
    table = trainq(tmp_path, "schedule", "list")
    as_json = trainq(tmp_path, "schedule", "list", "--json")
    # then the token is masked in both, as in trainq web's listing
    assert table.returncode == as_json.returncode == 0, (table.stderr, as_json.stderr)
    assert token not in table.stdout + as_json.stdout
    assert json.loads(as_json.stdout)[0]["config"] == {"user": "ci", "token": "**********"}
    assert "token=**********" in table.stdout


def test_a_runtime_schedule_under_a_deleted_static_name_is_not_static(
    tmp_path: Path, redis_client: Any, beats: Beats
) -> None:
    # given a static schedule st1, installed by a Beat from a module in its working directory
    project = tmp_path / "project"
    project.mkdir()
    (project / "statics_st1.py").write_text('beat_schedule = {"st1": {"every": "1h", "type": "probe"}}')
    beat = _beat(tmp_path, "statics_st1", cwd=project)
    try:
        wait_for(lambda: listed().get("st1", {}).get("static"), 30, message="static st1 installed")
    finally:
        beat.stop()
    # when it is deleted and a schedule of the same name is created at runtime
    for args in (["delete", "st1"], ["create", "st1", "--every", "2h", "--type", "probe", "--disabled"]):
        done = trainq(tmp_path, "schedule", *args)
        assert done.returncode == 0, done.stderr
    # then it is listed as not static
    assert listed()["st1"]["static"] is False
    assert "(static)" not in trainq(tmp_path, "schedule", "list").stdout
    # and a Beat started without the module keeps it (its first tick comes after its static clean-up)
    create("witness", {"every": "1s", "type": "probe"})
    beats.start()
    wait_for(lambda: runs("witness"), 20, message="the new Beat ticked")
    assert listed()["st1"]["every_s"] == 7200


def test_enabling_an_enabled_schedule_or_disabling_a_disabled_one_changes_nothing(
    tmp_path: Path, redis_client: Any
) -> None:
    # given an hourly schedule that last ran 30 minutes ago: its next run is in about 30 minutes
    create("idem", {"every": "1h", "type": "probe"})
    get("idem").reschedule(last_run_at=get("idem").last_run_at - timedelta(minutes=30))
    before = listed()["idem"]
    assert 1700 < before["next_run_at"] - time.time() <= 1800
    # when it is enabled again (an idempotent "ensure enabled")
    again = trainq(tmp_path, "schedule", "enable", "idem")
    # then it says so and its clock is unchanged
    assert again.returncode == 0 and again.stdout == "schedule idem already enabled\n", again
    assert listed()["idem"] == before
    # and likewise for disabling a disabled schedule: its next run once enabled is its own
    assert trainq(tmp_path, "schedule", "disable", "idem").stdout == "schedule idem disabled\n"
    twice = trainq(tmp_path, "schedule", "disable", "idem")
    assert twice.returncode == 0 and twice.stdout == "schedule idem already disabled\n", twice


def test_enabling_an_enabled_schedule_over_http_changes_nothing(api: httpx.Client) -> None:
    # given an hourly schedule that last ran 30 minutes ago
    create("idem", {"every": "1h", "type": "probe"})
    get("idem").reschedule(last_run_at=get("idem").last_run_at - timedelta(minutes=30))
    before = api.get("/api/v1/schedules").json()[0]
    # when it is enabled over HTTP, then it is as it was: its next run still in about 30 minutes
    assert api.post("/api/v1/schedules/idem/enable").json() == before
    assert 1700 < before["next_run_at"] - time.time() <= 1800


@pytest.mark.parametrize("module", ["../etc", ".x", "a..b", "my-schedules"])
def test_a_schedule_module_that_is_no_module_name_is_an_invalid_setting_for_beat_and_the_cli(
    tmp_path: Path, redis_client: Any, module: str
) -> None:
    expected = "error: invalid setting TRAINQ_BEAT_SCHEDULE_MODULE: "
    # when Beat starts with it, then it exits 2 with one line naming the setting, no traceback
    beat = _beat(tmp_path, module, cwd=tmp_path)
    try:
        wait_for(lambda: not beat.alive(), 30, message="beat exited")
        assert beat.popen.returncode == 2, beat.output()
        assert beat.output().startswith(expected) and len(beat.output().splitlines()) == 1, beat.output()
    finally:
        beat.stop()
    # and the CLI refuses it the same way
    listing = trainq(tmp_path, "schedule", "list", env={"TRAINQ_BEAT_SCHEDULE_MODULE": module})
    assert listing.returncode == 2 and listing.stderr.startswith(expected), listing


def test_a_timezone_that_is_no_iana_zone_is_refused_by_the_cli_the_api_and_beat(
    tmp_path: Path, api: httpx.Client
) -> None:
    problem = "unknown timezone 'localtime': use an IANA name such as Europe/Berlin"
    # when the CLI creates a cron schedule in 'localtime' (the reading host's own zone)
    made = trainq(
        tmp_path,
        "schedule",
        "create",
        "tzx",
        "--cron",
        "0 2 * * *",
        "--timezone",
        "localtime",
        "--type",
        "probe",
    )
    # then it is refused, exit 2, naming the problem
    assert made.returncode == 2 and made.stderr == f"error: schedule 'tzx': {problem}\n", made
    # and so is it over HTTP
    body = {"name": "tzx", "cron": "0 2 * * *", "timezone": "Factory", "type": "probe"}
    refused = api.post("/api/v1/schedules", json=body)
    assert refused.status_code == 422 and "unknown timezone 'Factory'" in refused.text, refused.text
    # and in a static schedules module Beat stops with one line, exit 2
    (tmp_path / "tz_statics.py").write_text(
        'beat_schedule = {"tzx": {"cron": "0 2 * * *", "timezone": "posixrules", "type": "probe"}}'
    )
    beat = _beat(tmp_path, "tz_statics", cwd=tmp_path)
    try:
        wait_for(lambda: not beat.alive(), 30, message="beat exited")
        assert beat.popen.returncode == 2, beat.output()
        assert "error: schedule 'tzx': unknown timezone 'posixrules'" in beat.output()
    finally:
        beat.stop()
    assert entries() == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ('beat_schedules = {"x": {"every": "1h", "type": "probe"}}', "has no beat_schedule"),
        ('beat_schedule = ["x"]', "has a beat_schedule of list"),
    ],
    ids=["misspelt", "not-a-dict"],
)
def test_a_schedule_module_without_a_dict_of_schedules_stops_beat_and_keeps_the_statics(
    tmp_path: Path, redis_client: Any, source: str, found: str
) -> None:
    # given a static schedule a Beat installed, and a module whose schedules are misspelt or no dict
    (tmp_path / "good_statics.py").write_text('beat_schedule = {"kept": {"every": "1h", "type": "probe"}}')
    first = _beat(tmp_path, "good_statics", cwd=tmp_path)
    try:
        wait_for(lambda: "kept" in listed(), 30, message="static schedule installed")
    finally:
        first.stop()
    (tmp_path / "odd_statics.py").write_text(source)
    beat = _beat(tmp_path, "odd_statics", cwd=tmp_path)
    try:
        # then Beat exits 2 with one line saying so, and the installed schedule is kept
        wait_for(lambda: not beat.alive(), 30, message="beat exited")
        assert beat.popen.returncode == 2, beat.output()
        line = f"error: invalid setting TRAINQ_BEAT_SCHEDULE_MODULE: module 'odd_statics' {found}"
        assert line in beat.output() and "Traceback" not in beat.output()
        assert listed()["kept"]["static"] is True
    finally:
        beat.stop()


def test_overlap_skip_skips_due_runs_while_the_previous_job_runs_and_allow_does_not(
    workers: Workers, beats: Beats, tmp_path: Path, redis_client: Any
) -> None:
    # given a probe pool and two every-1s schedules made from the shell whose jobs run until a key is
    # set: one with --overlap skip, one left at the default (allow)
    workers.start("probe", concurrency=2)
    config = json.dumps({"release_key": "overlap-release"})
    for name, extra in (("solo", ["--overlap", "skip"]), ("many", [])):
        made = trainq(
            tmp_path,
            "schedule",
            "create",
            name,
            "--every",
            "1s",
            "--type",
            "probe",
            "--config",
            config,
            *extra,
        )
        assert made.returncode == 0, made
    # when Beat runs them while the first job of each is still going
    beat = beats.start()
    wait_for(lambda: listed()["solo"]["skipped"] >= 3, 30, message="three due runs of solo skipped")
    wait_for(lambda: len(runs("many")) >= 3, 30, message="three runs of many submitted")
    # then the skip schedule submitted one job only, and says which run it skipped for, and how often
    (first,) = runs("solo")
    assert first.state in (JobState.QUEUED, JobState.RUNNING) and first.tags == {"schedule": "solo"}
    shown = listed()["solo"]
    assert shown["overlap"] == "skip" and shown["last_skipped_for"] == first.id, shown
    assert time.time() - shown["last_skipped_at"] < 5
    assert f"schedule solo: run skipped: its run {first.id} is still going (overlap is skip)" in beat.output()
    table = trainq(tmp_path, "schedule", "list").stdout
    assert "overlap: skip" in table and "skipped" in table and first.id in table
    # and the default schedule's runs overlap, as the docs say, and it skips nothing
    assert listed()["many"]["overlap"] == "allow" and listed()["many"]["skipped"] == 0
    # when the job is let finish
    redis_client.set("overlap-release", 1)
    wait_for(lambda: runs("solo")[0].state is JobState.SUCCEEDED, 30, message="first solo job done")
    # then the next due time submits the next run again
    wait_for(lambda: len(runs("solo")) >= 2, 20, message="solo submitted again")


def test_overlap_skip_waits_for_a_pipeline_run_and_a_run_started_by_hand(
    workers: Workers, beats: Beats, tmp_path: Path, redis_client: Any
) -> None:
    # given a two-job pipeline whose first job runs until a key is set, and an every-1s skip schedule of it
    pipeline = tmp_path / "hold.json"
    jobs = [
        {"job_id": "wait", "type": "probe", "config": {"release_key": "pipeline-release"}},
        {"job_id": "after", "type": "probe", "depends_on": ["wait"]},
    ]
    pipeline.write_text(json.dumps({"pipeline_id": "hold", "jobs": jobs}))
    workers.start("probe")
    args = ("schedule", "create", "held", "--every", "1s", "--pipeline", str(pipeline), "--overlap", "skip")
    assert trainq(tmp_path, *args).returncode == 0
    # and a run started by hand before Beat runs
    by_hand = trainq(tmp_path, "schedule", "run", "held").stdout.strip()
    # when Beat runs the schedule while that run is going
    beats.start()
    wait_for(lambda: listed()["held"]["skipped"] >= 2, 30, message="two due runs of held skipped")
    # then no other run was started, and the skips name the run going
    assert {r.id for r in get_runs().recent()} == {by_hand}
    assert listed()["held"]["last_skipped_for"] == by_hand
    # when the run finishes
    redis_client.set("pipeline-release", 1)
    wait_for(lambda: get_runs().ended(by_hand), 30, message="run by hand finished")
    # then Beat starts the next run at its next due time
    wait_for(lambda: len(get_runs().recent()) >= 2, 20, message="held started again")


def test_overlap_is_checked_at_create_and_a_stored_schedule_without_it_allows(registry: Any) -> None:
    # when a schedule is created with an overlap that is neither allow nor skip
    result = cli("schedule", "create", "bad", "--every", "1m", "--type", "probe", "--overlap", "never")
    # then it exits 2 naming the option, and nothing is stored
    assert result.exit_code == 2 and "Invalid value for '--overlap'" in result.output, result.output
    assert entries() == []
    # and a schedule stored without it (as the release before stored every one) allows overlaps
    create("old", {"every": "1m", "type": "probe"})
    assert "overlap" not in get("old").options
    assert listed()["old"]["overlap"] == "allow" and listed()["old"]["skipped"] == 0
