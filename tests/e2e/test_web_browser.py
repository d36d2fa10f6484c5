"""trainq web in a real headless Chromium: log in, start the ML pipeline from the page and watch its
DAG go from queued to succeeded with a moving progress bar, open a failed job's error, retry a dead
job from the page, toggle a schedule; a hostile job name is shown as text.

The screenshots land in ``tests/artifacts/`` (web-*.png) for CI to keep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.test_flower_browser import chromium  # noqa: F401  (the browser fixture)
from tests.fixtures import ARTIFACTS, ROOT, Workers, wait_for
from tests.integration.test_web import AUTH_ENV, PASSWORD, USER, Web, big_pipeline
from trainq import JobState, get_registry, schedules
from trainq.ops.control import submit

pytestmark = pytest.mark.slow
HOSTILE = "<script>window.hacked=1</script><img src=x onerror=window.hacked=2>"


def test_pipeline_dag_dead_job_retry_and_schedule_in_the_browser(
    workers: Workers,
    redis_client: redis.Redis,
    tmp_path: Path,
    chromium: Any,  # noqa: F811
) -> None:
    # given trainq web with basic auth and a worker for every queue of the ML pipeline
    web = Web(tmp_path, AUTH_ENV)
    workers.started.append(web.process)
    workers.start("data", "training", "detection", "probe", concurrency=2)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # then a browser without credentials is refused
    assert chromium.new_context().request.get(f"{web.url}/runs").status == 401
    login = {"username": USER, "password": PASSWORD}
    page = chromium.new_context(http_credentials=login, viewport={"width": 1500, "height": 900}).new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"a script ran: {dialog.message}"))

    # when alice pastes the ML pipeline on the runs page and starts it
    page.goto(f"{web.url}/runs")
    page.fill("textarea[name=definition]", (ROOT / "examples" / "ml-pipeline.yaml").read_text())
    page.click("button:has-text('Start run')")
    page.wait_for_url("**/runs/ml-demo-*")
    train = page.locator("#dag .node[data-job=train]")
    # then the DAG shows every job, and training runs with a progress bar that moves
    assert page.locator("#dag .node").count() == 5
    assert page.locator("#dag .arrows path").count() == 5
    page.locator("#dag .node.state-running[data-job=train]").wait_for(timeout=60_000)
    first = wait_for(lambda: _fill(train), 30, 0.1, message="a progress bar on train")
    wait_for(lambda: _fill(train) > first, 30, 0.1, message="train's bar moving")
    page.screenshot(path=str(ARTIFACTS / "web-run-training.png"), full_page=True)
    # and clicking the job shows its record and live progress numbers
    train.click()
    page.locator("#panel .job .progress").wait_for(timeout=10_000)
    assert "training" in page.locator("#panel").inner_text()
    # and the whole run reaches succeeded, drawn in green
    page.locator("#run-state .state-succeeded").wait_for(timeout=120_000)
    assert page.locator("#dag .node.state-succeeded").count() == 5
    page.screenshot(path=str(ARTIFACTS / "web-run-succeeded.png"), full_page=True)

    # given a job with a hostile name that failed
    failed = submit("probe", {"fail_times": 1, "permanent": True}, job_name=HOSTILE)
    wait_for(lambda: get_registry().get(failed).state is JobState.FAILED, 30, 0.1)
    # when alice opens it, then its error shows, and its name is text, not markup
    page.goto(f"{web.url}/jobs/{failed}")
    assert "permanent failure" in page.locator(".error-text").inner_text()
    assert page.locator("h2").first.inner_text().startswith(HOSTILE)
    assert page.evaluate("window.hacked") is None
    page.screenshot(path=str(ARTIFACTS / "web-failed-job.png"), full_page=True)
    page.goto(f"{web.url}/jobs")
    assert HOSTILE in page.locator("table.list").inner_text() and page.evaluate("window.hacked") is None
    page.screenshot(path=str(ARTIFACTS / "web-jobs.png"), full_page=True)

    # given a dead job whose fault is then fixed
    redis_client.set("fault:browser", 1)
    dead = submit("probe", {"fault_key": "fault:browser"}, job_name="flaky-export", retry={"max_retries": 0})
    wait_for(lambda: get_registry().get(dead).state is JobState.DEAD, 30, 0.1)
    redis_client.delete("fault:browser")
    # when alice retries it from the dead jobs page, then it runs again and succeeds
    page.goto(f"{web.url}/dead")
    row = page.locator("tr", has_text="flaky-export")
    assert "fault:browser" in row.inner_text()
    page.screenshot(path=str(ARTIFACTS / "web-dead.png"), full_page=True)
    row.locator("button:has-text('Retry')").click()
    page.wait_for_url("**/dead")
    wait_for(lambda: get_registry().get(dead).state is JobState.SUCCEEDED, 30, 0.1)
    assert "re-queued via web by alice" in [e.reason for e in get_registry().events(dead)]

    # given a schedule; when alice disables it and enables it again on the page, then it follows
    schedules.create("nightly-probe", {"cron": "0 2 * * *", "type": "probe", "config": {"seconds": 0}})
    page.goto(f"{web.url}/schedules")
    schedule = page.locator("tr.schedule[data-name=nightly-probe]")
    assert (
        schedule.locator(".enabled").inner_text().startswith("yes") and schedule.locator(".next").inner_text()
    )
    schedule.locator("button:has-text('Disable')").click()
    assert (
        schedule.locator(".enabled").inner_text().startswith("no")
        and not schedule.locator(".next").inner_text()
    )
    assert schedules.get("nightly-probe").enabled is False
    page.screenshot(path=str(ARTIFACTS / "web-schedules.png"), full_page=True)
    schedule.locator("button:has-text('Enable')").click()
    assert schedule.locator(".enabled").inner_text().startswith("yes")
    assert schedules.get("nightly-probe").enabled is True
    page.goto(f"{web.url}/queues")
    page.screenshot(path=str(ARTIFACTS / "web-queues.png"), full_page=True)

    # given a 200-job pipeline; when its run page opens, then every job is drawn at a readable size
    with web.client() as api:
        run_id = api.post("/api/v1/pipelines", json=big_pipeline(200, width=20)).json()["run_id"]
    page.goto(f"{web.url}/runs/{run_id}")
    assert page.locator("#dag .node").count() == 200
    page.locator("#dag .node[data-job=j0]").click()
    page.locator("#panel .job").wait_for(timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "web-run-200.png"))


def _fill(node: Any) -> float:
    return float(node.locator(".fill").get_attribute("width") or 0)
